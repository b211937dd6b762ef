"""Progress for long phases: rich bars with ETA on a terminal, plain log lines everywhere else.

A batch job's output is a file, where a bar draws nothing (or garbage); a run there once printed nothing
for twenty minutes. So off a terminal a line goes to stdout when the phase starts, at least every
IMGBENCH_PROGRESS_EVERY seconds (default 30) while it runs — from a timer thread, because one batch can
take longer than that — and when it ends: items done / total, rate and ETA.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_console = Console(stderr=True)
logger = logging.getLogger("imgbench.progress")
EVERY_VAR = "IMGBENCH_PROGRESS_EVERY"


class _Stdout(logging.Handler):
    """Writes to whatever sys.stdout is at the time (tests and redirections replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(self.format(record) + "\n")
        sys.stdout.flush()


def _progress_logger() -> logging.Logger:
    """The progress logger, printing to stdout whatever the log level (progress is output, not chatter)."""
    if not logger.handlers:
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class _Lines:
    """Counts items and prints a progress line on start, on a timer, and at the end."""

    def __init__(self, description: str, total: int, every: float) -> None:
        self.description, self.total, self.every = description, total, every
        self.done = 0
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._tick, name="imgbench-progress", daemon=True)

    def line(self, final: bool = False) -> str:
        with self._lock:
            done = self.done
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        if final:
            tail = f"done in {_duration(elapsed)}"
        elif done:
            tail = f"eta {_duration((self.total - done) / rate)}" if rate else "eta unknown"
        else:
            tail = "eta after the first batch"
        return f"{self.description}: {done}/{self.total} items{share}, {rate:.2f} items/s, {tail}"

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            _progress_logger().info(self.line())

    def __enter__(self) -> _Lines:
        _progress_logger().info(self.line())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        _progress_logger().info(self.line(final=True))


def report_every() -> float:
    """Seconds between progress lines off a terminal (IMGBENCH_PROGRESS_EVERY, default 30)."""
    value = os.environ.get(EVERY_VAR, "30")
    try:
        every = float(value)
    except ValueError:
        every = 0.0
    if every <= 0:
        from imgbench.errors import UserError

        raise UserError(f"{EVERY_VAR} must be a positive number of seconds, got {value!r}.")
    return every


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callable: a bar with ETA on a terminal, progress lines on stdout otherwise."""
    if _console.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=_console) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task_id, n)
        return
    with _Lines(description, total, report_every()) as lines:
        yield lines.advance
