"""Shared fixtures. Every test runs offline: a hub call would otherwise hang for ~25 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["IMGBENCH_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    from imgbench.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def cli_process(tmp_path):
    """Run `python -m imgbench` as a separate process (for kill / concurrency / import tests)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "imgbench", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, env={**os.environ, **(env or {})}, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def hardening_reference(tmp_path_factory):
    """world → an output folder holding one undamaged reference run of that world, made once per session."""
    from hardening_support import WORLDS, run_dir

    from imgbench.cli import main

    made: dict[str, Path] = {}

    def reference(world: str) -> Path:
        if world not in made:
            output = tmp_path_factory.mktemp(f"reference-{world}")
            assert main(["run", *WORLDS[world], "--output", str(output)]) == 0
            run_dir(output)  # exactly one run
            made[world] = output
        return made[world]

    return reference
