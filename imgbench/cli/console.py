"""The console every command prints to.

On a terminal rich fits tables to its width; piped into a file or a CI log there is no width, and
rich's 80-column default would cut table cells to "…", so output gets a generous fixed width
(unless COLUMNS says otherwise, which rich honours).
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 200


def output_console() -> Console:
    probe = Console()
    fixed = not probe.is_terminal and "COLUMNS" not in os.environ
    return Console(soft_wrap=True, width=PIPED_WIDTH if fixed else None)
