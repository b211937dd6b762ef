"""A fresh clone with no ../shared beside it and no Chromium on PATH: its tests skip, with reasons, never fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from needs import REPO, REQUIRE_ALL, SKIP_PREFIX, missing

# One test of each kind that needs something from outside the clone (the suite copies, Chromium).
SUBSET = ("tests/test_suites_data.py::test_every_suite_in_the_shared_copy_has_a_task",
          "tests/test_img_guidance.py::test_official_list_is_verified",
          "tests/test_report_html.py")


def _clone(target: Path) -> None:
    """Clone this checkout's committed HEAD (what a user would clone) into `target`."""
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        missing("git and a git checkout of imgbench", "run the tests from a `git clone` with git on PATH")
    head = subprocess.run([git, "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run([git, "clone", "-q", "--no-checkout", str(REPO), str(target)], check=True)
    subprocess.run([git, "-C", str(target), "checkout", "-q", head], check=True)


def test_fresh_clone_skips_with_reasons(tmp_path: Path) -> None:
    clone = tmp_path / "alone" / "imgbench"  # nothing beside it: no ../shared
    _clone(clone)
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE_ALL, "IMGBENCH_DATA_DIR")}
    env["PATH"] = str(Path(sys.executable).parent)  # no chromium, no chromedriver
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SUBSET],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert " failed" not in out and "3 skipped" in out, out
    assert out.count("SKIPPED [1] ") == 3, out
    assert f"{SKIP_PREFIX}the published suite copies" in out and "beside the clone" in out
    assert f"{SKIP_PREFIX}Chromium" in out and "apt-get install -y chromium chromium-driver" in out

    required = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", SUBSET[0]],
                              cwd=clone, env={**env, REQUIRE_ALL: "1"}, capture_output=True, text=True, timeout=300)
    assert required.returncode == 1 and ("1 failed" in required.stdout or "1 error" in required.stdout), \
        required.stdout
    assert f"{REQUIRE_ALL} is set" in required.stdout
