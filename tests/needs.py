"""What a test needs from outside the clone, and the skip (or CI failure) when it is missing.

A fresh clone has no ../shared folder and no Chromium, so `pytest` there skips the tests that need them,
with a reason naming what is missing and how to get it. CI (`.ci/run`) sets IMGBENCH_REQUIRE_ALL=1, which
turns every such skip into a failure, so CI still runs every test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_ALL = "IMGBENCH_REQUIRE_ALL"
SKIP_PREFIX = "needs "  # the fresh-clone test finds these skips by this prefix


def missing(what: str, how: str) -> NoReturn:
    """Skip (or, with IMGBENCH_REQUIRE_ALL=1, fail) the current test: `what` is absent; `how` gets it."""
    reason = f"{SKIP_PREFIX}{what}: {how}"
    if os.environ.get(REQUIRE_ALL, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ALL} is set, so a missing requirement is a failure)", pytrace=False)
    pytest.skip(reason)


def shared_suites() -> Path:
    """<repo>/../shared/suites, the published suite copies CI keeps beside the clone."""
    path = (REPO.parent / "shared" / "suites").resolve()
    if not (path / "MANIFEST.json").is_file():
        missing(f"the published suite copies ({path}/MANIFEST.json)",
                "put a shared/suites folder (laid out as docs/tasks.md says) beside the clone")
    return path


def chromium() -> tuple[str, str]:
    """(browser, driver) paths of Debian's headless Chromium, for the HTML report test."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        missing("Chromium and its WebDriver (chromium, chromedriver on PATH)",
                "apt-get install -y chromium chromium-driver")
    return browser, driver
