"""Crash-safe file writes: temp file then rename, and whole-line fsynced JSONL appends.

A process killed at any instant leaves either the old file or the new one, never half of one;
a JSONL file can end in at most one truncated line, which the run folder's audit reports and
heals (imgbench.audit) before anyone appends again. Temp files are named after the host and
process that write them, so a later run can tell a dead process's leftovers from a live one's
work in progress. New files get the user's umask, like any file `open()` creates.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgbench.util.failpoints import failpoint
from imgbench.util.hashing import sha256_bytes

logger = logging.getLogger(__name__)

HOST = sha256_bytes(socket.gethostname().encode("utf-8"))[:8]
"""Short tag of this machine in temp file names (run folders may be shared between machines)."""
_TEMP = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[^.]+\.tmp$")


def _umask() -> int:
    """The process umask. POSIX can only read it by setting it, so it is set and put back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_file(path: Path) -> tuple[int, str]:
    """An open temp file beside `path`, with the permissions `open()` would give (mkstemp's are 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{HOST}-{os.getpid()}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = _temp_file(path)
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
    fd, tmp = _temp_file(path)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_files(root: str | Path) -> list[Path]:
    """Delete the temp files under `root` left by killed processes of this host; return them.

    A live process's temp file is its write in progress and is left alone, as are other hosts' (their
    processes cannot be asked whether they are alive; a run on that host removes them).
    """
    removed = []
    for path in Path(root).rglob(".*.tmp"):
        match = _TEMP.match(path.name)
        if match and match["host"] == HOST and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.warning("%s: removed %d temp file(s) left by an interrupted process (%s)", root, len(removed),
                       ", ".join(str(p.relative_to(root)) for p in removed[:3]))
    return removed


class JsonlAppender:
    """Appends JSON records one whole line at a time, fsynced, to a file this process owns.

    The caller holds the file's shard lock and has healed the file (imgbench.audit), so it ends with a
    newline; appending to a file that does not would glue the new record onto a damaged line.
    """

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")
        self._fsync = fsync
        if self._handle.tell() and not _ends_with_newline(self.path):
            self._handle.close()
            raise RuntimeError(f"{self.path} does not end with a newline; heal it before appending")

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


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def append_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line under an advisory lock, shared by every process (e.g. invocations.jsonl).

    A line torn by a killed writer is left as it is (readers skip it) and the new one starts on a line of its own.
    """
    import fcntl

    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            logger.warning("%s: the last line was cut short (a process was killed while writing it); it is kept "
                           "as it is and this record starts a new line", path)
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


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
