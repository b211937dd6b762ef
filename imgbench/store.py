"""The run folder: layout, crash-safe records, integrity checks and shard locks (DESIGN §5).

    <output>/runs/<task>/<model>/<method>/<run_id>/
      run.json                                   identity, written once by whichever process creates the run
      invocations.jsonl                          one line per invocation (command, versions, item set, times)
      images/<prompt_id>/<seed>.png              (+ artefacts/<prompt_id>/<seed>/<name>.png|.json)
      generations[.shard-I-of-N].jsonl           one record per image: prompt_id, seed, tags, image, sha256, seconds
      scores/<scorer>@<hash>.json                the scorer's identity
      scores/<scorer>@<hash>[.shard-I-of-N].jsonl  prompt_id, seed, image_sha256, value, details
      metrics.json                               aggregate over a named item set

A record is trusted only if its image still hashes to the recorded sha256; anything else is
reported and redone. Each shard writes only its own record files, under an exclusive lock.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_bytes, sha256_file, sha256_json
from imgbench.util.io import JsonlAppender, atomic_write_bytes, atomic_write_json, read_jsonl

logger = logging.getLogger(__name__)

ItemKey = tuple[str, int]
SCHEMA_VERSION = 1


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
            raise UserError(f"--shard {text}: I must be between 0 and N-1 and N at least 1.")
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

    # identity ---------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        if not self.run_json.exists():
            raise UserError(f"{self.root} is not an imgbench run folder (no run.json); give a folder made by "
                            f"`imgbench run` or `imgbench generate`.")
        try:
            return json.loads(self.run_json.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UserError(f"{self.run_json} is damaged (not valid JSON); delete the run folder and rerun.") from None

    # writing ----------------------------------------------------------------------------
    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive per-shard lock: a second process on the same shard is refused, not interleaved."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        handle = open(lock_dir / f"{name}.lock", "w")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"another imgbench process is writing {name} of {self.root}; wait for it, "
                                f"or give this process another --shard.") from None
            yield
        finally:
            handle.close()

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
        path = self.root / "invocations.jsonl"
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def appender(self, path: Path, fsync: bool = True) -> JsonlAppender:
        return JsonlAppender(path, fsync=fsync)

    # reading ----------------------------------------------------------------------------
    def load_generations(self, verify: bool = True) -> dict[ItemKey, dict[str, Any]]:
        """Valid generation records from every shard's file; damaged ones are reported and dropped."""
        records: dict[ItemKey, dict[str, Any]] = {}
        for path in sorted(self.root.glob("generations*.jsonl")):
            for record in read_jsonl(path):
                try:
                    key = (str(record["prompt_id"]), int(record["seed"]))
                    image, digest = record["image"], record["sha256"]
                except (KeyError, TypeError, ValueError):
                    logger.warning("%s: record without prompt_id/seed/image/sha256 ignored", path)
                    continue
                if key in records:
                    continue
                if verify:
                    file = self.resolve_image(image)
                    if not file.exists():
                        logger.warning("%s: image %s is missing; it will be regenerated", path, image)
                        continue
                    if sha256_file(file) != digest:
                        logger.warning("%s: image %s does not match its recorded sha256; it will be regenerated",
                                       path, image)
                        continue
                records[key] = record
        return records

    def load_scores(self, scorer_key: str, generations: dict[ItemKey, dict[str, Any]]) -> dict[ItemKey, dict]:
        """Score rows (all shards) whose image sha256 matches the current generation record."""
        rows: dict[ItemKey, dict[str, Any]] = {}
        folder = self.root / "scores"
        for path in sorted(folder.glob(f"{scorer_key}*.jsonl")) if folder.exists() else []:
            for record in read_jsonl(path):
                try:
                    key = (str(record["prompt_id"]), int(record["seed"]))
                except (KeyError, TypeError, ValueError):
                    continue
                generation = generations.get(key)
                if key in rows or generation is None or record.get("image_sha256") != generation["sha256"]:
                    continue
                rows[key] = record
        return rows

    def scorer_keys(self) -> list[str]:
        """Scorer keys (`name@hash`) that have an identity file in this run."""
        folder = self.root / "scores"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []
