"""Errors that reach the user as a message, not a traceback.

A `UserError` is something the user can fix (bad name, bad file, bad flag): the CLI prints it and
exits with status 2. Anything else is an internal failure (exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input; the message must say how to fix it."""


class DamagedRunError(UserError):
    """A run folder whose identity (run.json) cannot be trusted; commands that scan many runs skip it, by name."""


def did_you_mean(name: str, choices: Iterable[str], kind: str) -> str:
    """Build the "unknown X 'y' — did you mean 'z'?" message, listing what exists."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f" — did you mean {', '.join(repr(c) for c in close)}?" if close else "."
    listing = ", ".join(choices) if choices else "(none registered)"
    return f"unknown {kind} {name!r}{hint} Available {kind}s: {listing}."
