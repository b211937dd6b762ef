"""Errors that reach the user as a message, not a traceback.

A `UserError` is something the user can fix (bad name, bad file, bad flag): the CLI prints it and
exits with status 2. Anything else is an internal failure (exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A problem with the user's input; the message must say how to fix it."""


class DamagedRunError(UserError):
    """A run folder whose identity (run.json) cannot be trusted; commands that scan many runs skip it, by name."""


class MissingFiles(UserError):
    """Weights or data files a run needs that are neither here nor downloadable now (offline, hub down).

    A run collects every one of these (model, method, scorers, task data) before it stops, so one error lists
    all that must be fetched instead of one per rerun (imgbench.runner.collect_missing).
    """


def collect_missing(missing: list[MissingFiles], step: Callable[[], T]) -> T | None:
    """`step()`, or None with its MissingFiles appended: a run lists everything it lacks in one error."""
    try:
        return step()
    except MissingFiles as exc:
        missing.append(exc)
        return None


def missing_together(errors: list[MissingFiles]) -> MissingFiles:
    """One error naming every missing thing (a single one keeps its own message; combined ones are flattened)."""
    parts = [part for error in errors for part in getattr(error, "parts", [error])]
    unique = list(dict.fromkeys(str(e) for e in parts))
    if len(unique) == 1:
        return parts[0]
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(unique, 1))
    combined = MissingFiles(f"{len(unique)} things this run needs are missing; fetch them all (`imgbench download` "
                            f"with this run's arguments fetches and verifies them), then rerun:\n{listed}")
    combined.parts = parts  # type: ignore[attr-defined]
    return combined


def did_you_mean(name: str, choices: Iterable[str], kind: str) -> str:
    """Build the "unknown X 'y' — did you mean 'z'?" message, listing what exists."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f" — did you mean {', '.join(repr(c) for c in close)}?" if close else "."
    listing = ", ".join(choices) if choices else "(none registered)"
    return f"unknown {kind} {name!r}{hint} Available {kind}s: {listing}."
