"""Crash-safe file writes: temp file then rename, and whole-line fsynced JSONL appends.

A process killed at any instant leaves either the old file or the new one, never half of one;
a JSONL file can end in at most one truncated line, which readers report and writers repair.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgbench.util.failpoints import failpoint

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        failpoint(f"before-rename:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def create_exclusive_json(path: str | Path, obj: Any) -> bool:
    """Write `path` only if it does not exist yet, atomically; return whether this call created it.

    Used for run.json: whichever process creates the run folder writes its identity, once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if path exists: no process overwrites another's run.json
            return True
        except FileExistsError:
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)


class JsonlAppender:
    """Appends JSON records one whole line at a time, fsynced, to a file this process owns.

    On open, a truncated last line (a process killed mid-write) is cut off so the next record
    starts on a fresh line; the caller holds the shard lock, so no one else is writing.
    """

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._handle = open(self.path, "ab")
        self._fsync = fsync

    def _repair_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a truncated last record (%d bytes) left by an interrupted write",
                       self.path, len(data) - keep)
        with open(self.path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")
        if os.environ.get("IMGBENCH_FAILPOINT") == f"partial-record:{self.path.name}":
            self._handle.write(data[: len(data) // 2])  # simulate a kill in the middle of a write
            self._handle.flush()
            failpoint(f"partial-record:{self.path.name}")
        self._handle.write(data)
        self._handle.flush()
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the valid records of a JSONL file; damaged lines are logged and skipped (then redone)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("%s:%d: damaged record ignored (it will be redone)", path, number)
                continue
            if isinstance(record, dict):
                yield record
            else:
                logger.warning("%s:%d: record is not an object; ignored", path, number)
