"""Named pause points for crash tests: prove that a SIGKILL at the worst moment loses nothing.

With IMGBENCH_FAILPOINT=<name> set, the process reaching `failpoint(name)` touches
IMGBENCH_FAILPOINT_FILE (so the test knows it got there) and sleeps until killed. Unset — the
only state outside tests — it is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def failpoint(name: str) -> None:
    if os.environ.get("IMGBENCH_FAILPOINT") != name:
        return
    marker = os.environ.get("IMGBENCH_FAILPOINT_FILE")
    if marker:
        Path(marker).touch()
    while True:
        time.sleep(1)
