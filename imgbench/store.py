"""The run folder: layout, identity, crash-safe writes and shard locks (DESIGN §5).

    <output>/runs/<task>/<model>/<method>/<run_id>/
      run.json                                   identity, written once by whichever process creates the run
      invocations.jsonl                          one line per invocation (command, versions, item set, times)
      images/<prompt_id>/<seed>.png              (+ artefacts/<prompt_id>/<seed>/<name>.png|.json)
      generations[.shard-I-of-N].jsonl           one record per image: prompt_id, seed, tags, image, sha256, seconds
      scores/<scorer>@<hash>.json                the scorer's identity
      scores/<scorer>@<hash>[.shard-I-of-N].jsonl  prompt_id, seed, image_sha256, value, details, checksum
      metrics.json                               aggregate over a named item set

run_id is the hash of run.json's identity and the folder's name, so an edited, damaged or missing run.json
is always detected. Which records are trusted, and how damaged record files are healed, is imgbench.audit's
job (docs/store.md); each shard writes only its own record files, under an exclusive lock.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench import audit
from imgbench.errors import DamagedRunError, UserError
from imgbench.util.hashing import canonical_json, sha256_bytes, sha256_json
from imgbench.util.io import (
    JsonlAppender,
    append_line,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    create_exclusive_json,
    remove_stale_temp_files,
)
from imgbench.util.text import check_name

logger = logging.getLogger(__name__)

ItemKey = tuple[str, int]
SCHEMA_VERSION = 1
_SHARD_SUFFIX = re.compile(r"\.shard-\d+-of-\d+$")
_MANIFEST_FIELDS = {"run_id": str, "identity": dict, "task": str, "model": str, "method": str}


@dataclass(frozen=True)
class Shard:
    """Shard I of N: owns the items whose stable hash is I modulo N (independent of the item list)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise UserError(f"--shard expects I/N such as 0/2, got {text!r}.") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise UserError(f"--shard {text}: I must be between 0 and N-1 and N at least 1 (e.g. 0/2 and 1/2).")
        return shard

    @property
    def suffix(self) -> str:
        return "" if self.count == 1 else f".shard-{self.index}-of-{self.count}"

    def owns(self, key: ItemKey) -> bool:
        if self.count == 1:
            return True
        return int(sha256_json([key[0], key[1]])[:8], 16) % self.count == self.index


def encode_value(value: float) -> tuple[float | None, str | None]:
    """JSON has no NaN/inf: store them as null plus a marker, so stats can count them, never drop them."""
    value = float(value)
    if math.isfinite(value):
        return value, None
    return None, repr(value)


def decode_value(record: dict[str, Any]) -> float:
    if record.get("value") is None:
        return float(record.get("nonfinite") or "nan")
    return float(record["value"])


def run_folder(output: str | Path, task: str, model: str, method: str, run_id: str) -> Path:
    """OUTPUT/runs/<task>/<model>/<method>/<run_id>; each name must be one plain folder name (never `..`)."""
    for what, name in (("task name", task), ("model name", model), ("method name", method), ("run id", run_id)):
        check_name(name, what)
    return Path(output) / "runs" / task / model / method / run_id


def _differences(expected: Any, found: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (for a message that says what was edited)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        return [path for key in sorted(set(expected) | set(found))
                for path in _differences(expected.get(key), found.get(key), f"{prefix}{key}.")]
    return [] if expected == found else [prefix.rstrip(".") or "(the whole identity)"]


class RunStore:
    """Reads and writes one run folder. Cheap to construct; touches the disk only when asked."""

    def __init__(self, root: str | Path, images_root: str | Path | None = None) -> None:
        self.root = Path(root)
        self.images_root = Path(images_root) if images_root else self.root

    # layout -------------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    def image_relpath(self, key: ItemKey) -> str:
        return f"images/{key[0]}/{key[1]}.png"

    def resolve_image(self, relpath: str) -> Path:
        path = Path(relpath)
        return path if path.is_absolute() else self.images_root / path

    def generations_file(self, shard: Shard) -> Path:
        return self.root / f"generations{shard.suffix}.jsonl"

    def scores_file(self, scorer_key: str, shard: Shard) -> Path:
        return self.root / "scores" / f"{scorer_key}{shard.suffix}.jsonl"

    def scorer_meta_file(self, scorer_key: str) -> Path:
        return self.root / "scores" / f"{scorer_key}.json"

    def generation_files(self) -> list[Path]:
        return sorted(self.root.glob("generations*.jsonl"))

    def score_files(self, scorer_key: str) -> list[Path]:
        folder = self.root / "scores"
        return sorted(p for p in folder.glob("*.jsonl") if _SHARD_SUFFIX.sub("", p.stem) == scorer_key)

    # identity ---------------------------------------------------------------------------
    def _has_content(self) -> bool:
        return any((self.root / name).exists() for name in ("run.json", "images", "scores")) or \
            bool(self.generation_files())

    def _manifest_problem(self) -> tuple[str | None, dict[str, Any] | None]:
        """(what is wrong with run.json, its parsed content if it parsed)."""
        if not self.run_json.exists():
            return "run.json is missing", None
        try:
            manifest = json.loads(self.run_json.read_bytes())
        except (ValueError, UnicodeDecodeError):
            return "run.json is not valid JSON", None
        if not isinstance(manifest, dict):
            return "run.json is not a JSON object", None
        for name, kind in _MANIFEST_FIELDS.items():
            if not isinstance(manifest.get(name), kind):
                return f"run.json has no valid {name!r}", manifest
        if manifest["run_id"] != self.root.name:
            return f"run.json names run {manifest['run_id']!r}, but the folder is {self.root.name!r}", manifest
        try:
            digest = sha256_json(manifest["identity"])[:12]
        except ValueError:
            digest = ""
        if digest != manifest["run_id"]:
            return "run.json's identity does not hash to its run id (it was edited or damaged)", manifest
        return None, manifest

    def _damaged(self, problem: str) -> DamagedRunError:
        return DamagedRunError(
            f"run folder {self.root} is damaged: {problem}. Its images and scores cannot be attributed to a model "
            f"and method, so imgbench will not use them: move the folder out of the results folder (or delete it) "
            f"and rerun the command that made it (invocations.jsonl in the folder lists it).")

    def read_manifest(self) -> dict[str, Any]:
        """run.json, checked against the folder: readable, complete, and hashing to the folder's run id."""
        if not self.root.is_dir() or not self._has_content():
            raise UserError(f"{self.root} is not an imgbench run folder (no run.json); give a folder made by "
                            f"`imgbench run` or `imgbench generate`.")
        problem, manifest = self._manifest_problem()
        if problem:
            raise self._damaged(problem)
        assert manifest is not None
        return manifest

    def check_identity(self, identity: dict[str, Any]) -> None:
        """Refuse a folder at this run's path whose run.json is missing, damaged or not this identity.

        The path is derived from the identity's hash, so a sound run.json there is this identity; a folder
        with no content at all (a process killed before writing run.json) is simply empty.
        """
        if not self.root.is_dir() or not self._has_content():
            return
        problem, manifest = self._manifest_problem()
        if problem is None:
            return
        if manifest is not None and isinstance(manifest.get("identity"), dict):
            changed = _differences(json.loads(canonical_json(identity)), manifest["identity"])
            problem += f"; it differs from the identity this command asks for at {', '.join(changed[:4])}"
        raise self._damaged(problem)

    # locks ------------------------------------------------------------------------------
    @staticmethod
    def lock_name(record_file: Path) -> str:
        """The lock guarding one record file (a shard's generations, or a shard's rows of one scorer)."""
        return record_file.stem if record_file.parent.name != "scores" else f"scores-{record_file.stem}"

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """An exclusive per-shard lock, without waiting: yields whether it was free (held until the block ends)."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{name}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """The lock a writer holds for its whole phase: a second process on the same shard is refused, not
        interleaved."""
        with self.try_lock(name) as free:
            if not free:
                raise UserError(f"another imgbench process is writing {name} of {self.root}; wait for it to "
                                f"finish, then rerun (two processes on the same items would make them twice).")
            yield

    # writing ----------------------------------------------------------------------------
    def save_image(self, key: ItemKey, image: Any) -> tuple[str, str]:
        """Write the PNG atomically; return (relative path, sha256 of the bytes)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        relpath = self.image_relpath(key)
        atomic_write_bytes(self.root / relpath, data)
        return relpath, sha256_bytes(data)

    def save_artefacts(self, key: ItemKey, artefacts: dict[str, Any]) -> dict[str, Any]:
        """Images become PNG files; anything else is stored as JSON next to them."""
        saved: dict[str, Any] = {}
        folder = f"artefacts/{key[0]}/{key[1]}"
        for name, value in artefacts.items():
            if hasattr(value, "save") and hasattr(value, "size"):
                buffer = io.BytesIO()
                value.save(buffer, format="PNG")
                atomic_write_bytes(self.root / folder / f"{name}.png", buffer.getvalue())
                saved[name] = f"{folder}/{name}.png"
            else:
                atomic_write_json(self.root / folder / f"{name}.json", value)
                saved[name] = f"{folder}/{name}.json"
        return saved

    def append_invocation(self, record: dict[str, Any]) -> None:
        append_line(self.root / "invocations.jsonl", record)

    def appender(self, path: Path, fsync: bool = True) -> JsonlAppender:
        return JsonlAppender(path, fsync=fsync)

    def create_manifest(self, manifest: dict[str, Any]) -> None:
        create_exclusive_json(self.run_json, manifest)

    def write_scorer_meta(self, scorer_key: str, meta: dict[str, Any]) -> None:
        """The scorer's identity file, derived from the scorer: written if missing, rewritten if damaged."""
        path = self.scorer_meta_file(scorer_key)
        problem = self._scorer_meta_problem(scorer_key)
        if problem is None:
            return
        if problem == "is missing":
            if create_exclusive_json(path, meta) and any(p.stat().st_size for p in self.score_files(scorer_key)):
                logger.warning("%s was missing though the run has rows of this scorer; rewritten from the scorer",
                               path)
            return
        logger.warning("%s %s; rewritten from the scorer", path, problem)
        atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Write metrics.json, saying so when the file there was damaged or disagreed over the same items."""
        text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"
        try:
            old = self.metrics_json.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        except (OSError, UnicodeDecodeError):
            old = ""
        if old == text:
            return
        if old is not None:
            try:
                same_items = json.loads(old).get("item_set") == metrics["item_set"]
            except (ValueError, AttributeError):
                logger.warning("%s was damaged (not a JSON object); recomputed from the records", self.metrics_json)
            else:
                if same_items:
                    logger.warning("%s disagreed with the records over the same items (edited, damaged, or written "
                                   "by another imgbench version); recomputed from the records", self.metrics_json)
        atomic_write_text(self.metrics_json, text)

    def remove_stale_temp_files(self) -> None:
        remove_stale_temp_files(self.root)

    # reading ----------------------------------------------------------------------------
    def load_generations(self, verify: bool = True) -> dict[ItemKey, dict[str, Any]]:
        """The trusted generation record of each item (all shards); the rest is reported (imgbench.audit)."""
        found = audit.audit_generations(self, verify)
        found.report()
        return found.valid

    def load_scores(self, scorer_key: str, generations: dict[ItemKey, dict[str, Any]]) -> dict[ItemKey, dict]:
        """The trusted score row of each item: checksum sound, scoring the image its generation record names."""
        found = audit.audit_scores(self, scorer_key, generations)
        found.report()
        return found.valid

    def scorer_keys(self) -> list[str]:
        """Scorer keys (`name@hash`) with an identity file or rows in this run."""
        folder = self.root / "scores"
        if not folder.exists():
            return []
        return sorted({p.stem for p in folder.glob("*.json")} |
                      {_SHARD_SUFFIX.sub("", p.stem) for p in folder.glob("*.jsonl")})

    def _scorer_meta_problem(self, scorer_key: str) -> str | None:
        try:
            meta = json.loads(self.scorer_meta_file(scorer_key).read_bytes())
        except FileNotFoundError:
            return "is missing"
        except (ValueError, UnicodeDecodeError):
            return "is not valid JSON"
        if not isinstance(meta, dict) or not isinstance(meta.get("identity"), dict):
            return "has no scorer identity"
        if sha256_json(meta["identity"])[:12] != scorer_key.rpartition("@")[2]:
            return "holds an identity that does not hash to its name (edited or damaged)"
        value_range = meta.get("range")
        if not isinstance(meta.get("higher_is_better"), bool) or not (
                value_range is None or (isinstance(value_range, list) and len(value_range) == 2
                                        and all(isinstance(v, (int, float)) for v in value_range))):
            return "has no valid higher_is_better / range"
        return None

    def read_scorer_meta(self, scorer_key: str) -> dict[str, Any]:
        """A scorer's identity file (direction, range); damage names the command that rewrites it."""
        problem = self._scorer_meta_problem(scorer_key)
        if problem:
            raise UserError(f"{self.scorer_meta_file(scorer_key)} {problem}; rescoring rewrites it: `imgbench score "
                            f"--run {self.root} --scorer {scorer_key.split('@')[0]}`.")
        return json.loads(self.scorer_meta_file(scorer_key).read_bytes())

    def read_metrics(self) -> tuple[dict[str, Any] | None, str | None]:
        """(metrics.json, None) if it is a JSON object; (None, why not) if missing or damaged (the records decide)."""
        try:
            metrics = json.loads(self.metrics_json.read_bytes())
        except FileNotFoundError:
            return None, "missing"
        except (ValueError, UnicodeDecodeError):
            return None, "damaged (not valid JSON)"
        return (metrics, None) if isinstance(metrics, dict) else (None, "damaged (not a JSON object)")
