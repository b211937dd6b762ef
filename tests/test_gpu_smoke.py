"""The GPU smoke run (benchmarks/gpu_smoke.py) for the Instruct-Pix2Pix editors and SLD (tiny OWLv2 + SAM and its
latent operations on a tiny SD 1.5 pipeline): a CPU dry run at tiny sizes in the default test run, so the script
cannot rot between GPU loans, and the CUDA run itself under the `gpu` marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"
EDITORS = "ip2p-sd15,ip2p-sdxl"


def run_smoke(*args: str, kinds: str = EDITORS) -> list[dict]:
    env = {**os.environ, "IMGBENCH_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--kinds", kinds, *args], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_editor_smoke_cpu_dry_run() -> None:
    rows = run_smoke("--device", "cpu", "--dtype", "fp32", "--size", "64", "--batch", "2", "--steps", "2",
                     "--repeats", "1")
    assert [r["model"] for r in rows[:2]] == EDITORS.split(",")
    assert all(r["batch_vs_alone_max_pixel_diff"] == 0 and r["edits_per_s"] > 0 for r in rows[:2])


@pytest.mark.gpu  # needs CUDA: the same editors in fp16 on the device
def test_editor_smoke_on_cuda() -> None:
    rows = run_smoke("--size", "64", "--batch", "8", "--steps", "4", "--repeats", "3")
    assert all(r["edits_per_s"] > 0 for r in rows[:2])


def test_sld_smoke_cpu_dry_run() -> None:
    row = run_smoke("--device", "cpu", "--dtype", "fp32", "--size", "64", "--batch", "1", "--steps", "2",
                    "--repeats", "1", kinds="sld-sd15")[0]
    assert row["model"] == "sld-sd15" and row["batch_vs_alone_max_pixel_diff"] == 0 and row["corrections_per_s"] > 0


@pytest.mark.gpu  # needs CUDA: SLD's detector and latent operations in fp16 on the device
def test_sld_smoke_on_cuda() -> None:
    row = run_smoke("--size", "64", "--batch", "4", "--steps", "4", "--repeats", "2", kinds="sld-sd15")[0]
    assert row["corrections_per_s"] > 0
