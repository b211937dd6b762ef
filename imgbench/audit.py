"""Which records of a run folder to trust, and the rewrite that heals the rest (DESIGN §5, docs/store.md).

Invariants, checked on every read of a record family (every shard's generations files, or every shard's
rows of one scorer):
- one record per (prompt_id, seed): with two, neither is trusted (the first is no likelier to be the good
  one), so both are dropped and the item is redone once;
- a generation record names its own image (images/<prompt_id>/<seed>.png, or for external images a file
  <prompt_id>/<seed>.png) and, when verified, that image exists, is not empty and hashes to the recorded
  sha256, and its artefacts exist;
- a score row carries a checksum over its content and the scorer key, and scored the image its item's
  generation record names (a row for an earlier image is stale rather than damaged: dropped and rescored).
A line that is not a JSON object is dropped; a complete last line that only lacks its newline is kept.
Healing rewrites each damaged file atomically with the lines kept, holding that file's lock.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbench.util.hashing import sha256_file, sha256_json
from imgbench.util.io import atomic_write_bytes

if TYPE_CHECKING:
    from imgbench.store import ItemKey, RunStore

logger = logging.getLogger(__name__)


@dataclass
class Line:
    """One line of a record file and the verdict on it (problem None: trusted, or kept for later)."""

    path: Path
    number: int
    raw: bytes
    record: dict[str, Any] | None = None
    key: ItemKey | None = None
    problem: str | None = None
    stale: bool = False
    """Dropped because its item changed since (a row for an earlier image), not because it was damaged."""


@dataclass
class Audit:
    """A record family as found: the trusted record per item, and every line with its verdict."""

    what: str
    lines: list[Line] = field(default_factory=list)
    unterminated: set[Path] = field(default_factory=set)
    """Files whose complete last line lacks its final newline (kept; healing adds the newline)."""
    valid: dict[ItemKey, dict[str, Any]] = field(default_factory=dict)

    def dropped(self) -> list[Line]:
        return [line for line in self.lines if line.problem]

    def damaged_files(self) -> set[Path]:
        return {line.path for line in self.dropped()} | self.unterminated

    def kept_bytes(self, path: Path) -> bytes:
        return b"".join(line.raw + b"\n" for line in self.lines if line.path == path and not line.problem)

    def report(self, per_file: int = 5) -> None:
        """Log what was dropped: the first `per_file` lines of each file one by one, then a count."""
        shown: Counter = Counter()
        for line in self.dropped():
            shown[line.path] += 1
            if shown[line.path] > per_file:
                continue
            item = f" (item {line.key[0]}/{line.key[1]})" if line.key else ""
            if line.stale:
                logger.info("%s:%d: %s%s; it is rescored", line.path, line.number, line.problem, item)
            else:
                logger.warning("%s:%d: %s%s — not trusted; the item is redone", line.path, line.number,
                               line.problem, item)
        for path, count in shown.items():
            if count > per_file:
                logger.warning("%s: %d more lines not trusted (their items are redone)", path, count - per_file)
        for path in sorted(self.unterminated):
            logger.warning("%s: the last %s is complete but lacks its final newline; kept", path, self.what)


def _settled_bytes(path: Path, tries: int = 5, pause: float = 0.01) -> bytes:
    """The file's bytes, read again while its end is open and still changing.

    An append is one write of a whole line, but a reader can see it half done (the kernel copies a line that
    straddles a page in two steps). Another shard's writer finishes such a line within microseconds, while a
    line cut by a killed writer never changes: only the second is damage to report.
    """
    data = path.read_bytes()
    for _ in range(tries):
        if not data or data.endswith(b"\n"):
            break
        time.sleep(pause)
        again = path.read_bytes()
        if again == data:
            break
        data = again
    return data


def _read(path: Path, audit: Audit) -> None:
    data = _settled_bytes(path)
    if not data:  # created by a writer that has not appended yet (another shard's, a moment ago)
        return
    pieces = data.split(b"\n")
    open_end = not data.endswith(b"\n")
    if not open_end:
        pieces.pop()
    for number, raw in enumerate(pieces, start=1):
        line = Line(path=path, number=number, raw=raw)
        last = open_end and number == len(pieces)
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            line.problem = ("a truncated last record (a write was interrupted)" if last else
                            "an empty line" if not raw.strip() else "not valid JSON")
        else:
            if not isinstance(record, dict):
                line.problem = "not a JSON object"
            else:
                line.record = record
                line.key = _key(record)
                if line.key is None:
                    line.problem = "no valid prompt_id / seed"
                elif last:
                    audit.unterminated.add(path)
        audit.lines.append(line)


def _key(record: dict[str, Any]) -> ItemKey | None:
    prompt_id, seed = record.get("prompt_id"), record.get("seed")
    if not isinstance(prompt_id, str) or not prompt_id or isinstance(seed, bool) or not isinstance(seed, int):
        return None
    return prompt_id, seed


def _audit(what: str, files: list[Path], check: Callable[[Line], str | None]) -> Audit:
    """Read every file, drop duplicates (all copies), then let `check` judge each remaining record."""
    audit = Audit(what=what)
    for path in files:
        _read(path, audit)
    counts = Counter(line.key for line in audit.lines if line.key and not line.problem)
    for line in audit.lines:
        if line.problem:
            continue
        assert line.key is not None and line.record is not None
        if counts[line.key] > 1:
            line.problem = f"one of {counts[line.key]} {what}s for one item (one allowed)"
            continue
        line.problem = check(line)
        if line.problem is None:
            audit.valid[line.key] = line.record
    return audit


def _names_own_image(key: ItemKey, image: str, store: RunStore) -> bool:
    if image == store.image_relpath(key):
        return True
    path = Path(image)
    return path.is_absolute() and path.parent.name == key[0] and path.suffix == ".png" and \
        path.stem.isdigit() and int(path.stem) == key[1]


def _generation_problem(store: RunStore, line: Line, verify: bool) -> str | None:
    assert line.record is not None and line.key is not None
    image, digest = line.record.get("image"), line.record.get("sha256")
    if not isinstance(image, str) or not isinstance(digest, str):
        return "no image path or sha256"
    if not _names_own_image(line.key, image, store):
        return f"it names image {image}, which is not this item's"
    artefacts = line.record.get("artefacts") or {}
    if not isinstance(artefacts, dict) or not all(isinstance(v, str) for v in artefacts.values()):
        return "malformed artefacts"
    if not verify:
        return None
    file = store.resolve_image(image)
    if not file.is_file():
        return f"image {image} is missing"
    if file.stat().st_size == 0:
        return f"image {image} is empty"
    if sha256_file(file) != digest:
        return f"image {image} does not match its recorded sha256"
    missing = [rel for rel in artefacts.values() if not (store.root / rel).is_file()]
    return f"artefact {missing[0]} is missing" if missing else None


def audit_generations(store: RunStore, verify: bool) -> Audit:
    """Every generations*.jsonl of the run; `verify` also hashes each image (what a resume must do)."""
    return _audit("generation record", store.generation_files(), lambda line: _generation_problem(store, line, verify))


def row_checksum(row: dict[str, Any], scorer_key: str) -> str:
    """sha256 (first 16 hex) of the row's content without its checksum, and the scorer key it belongs to.

    It catches accidental damage (an edited value, a row pasted into another scorer's file); anyone can
    recompute it, so it is no defence against a deliberate forgery.
    """
    content = {k: v for k, v in row.items() if k != "checksum"}
    return sha256_json({"scorer": scorer_key, "row": content})[:16]


def _score_problem(scorer_key: str, line: Line, generations: dict[ItemKey, dict[str, Any]]) -> str | None:
    assert line.record is not None and line.key is not None
    row = line.record
    if "checksum" not in row:
        return "no checksum (a row written before rows carried one)"
    try:
        sound = row["checksum"] == row_checksum(row, scorer_key)
    except ValueError:  # NaN / Infinity typed into the file
        sound = False
    if not sound:
        return "its checksum does not match its content (edited or damaged)"
    generation = generations.get(line.key)
    if generation is not None and row.get("image_sha256") != generation["sha256"]:
        line.stale = True
        return "it scored an earlier image of the item"
    return None


def audit_scores(store: RunStore, scorer_key: str, generations: dict[ItemKey, dict[str, Any]]) -> Audit:
    """Every shard's rows of one scorer, judged against the trusted generation records.

    Rows of items without a trusted generation record are kept but not trusted: they count again once the
    item's image is back (a regenerated image is bit-identical for a deterministic model).
    """
    found = _audit("score row", store.score_files(scorer_key),
                   lambda line: _score_problem(scorer_key, line, generations))
    found.valid = {key: row for key, row in found.valid.items() if key in generations}
    return found


def heal(store: RunStore, read: Callable[[], Audit], own_lock: str) -> tuple[Audit, set[ItemKey]]:
    """Rewrite every damaged file of a record family with the lines it keeps; the caller holds `own_lock`.

    Another shard's damaged file is rewritten only if its lock is free (then the family is read again, since
    its writer may have appended meanwhile). Items whose bad records sit in a file another process is writing
    are returned as blocked: redoing them now would leave two records for one item.
    """
    found = read()
    others = sorted({store.lock_name(p) for p in found.damaged_files()} - {own_lock})
    with ExitStack() as stack:
        held = {own_lock} | {name for name in others if stack.enter_context(store.try_lock(name))}
        if others:
            found = read()
        blocked: set[ItemKey] = set()
        for path in sorted(found.damaged_files()):
            if store.lock_name(path) in held:
                atomic_write_bytes(path, found.kept_bytes(path))
            else:
                blocked |= {line.key for line in found.dropped() if line.path == path and line.key}
    found.report()
    for key in sorted(blocked):
        logger.warning("item %s/%s has a damaged record in a file another imgbench process is writing; it is "
                       "redone by a rerun once that process has finished", *key)
    return found, blocked
