"""A run that lacks several things (suite file, model weights, aligner, template list, MLLM, scorer weights)
names every one in one error, each with how to get it, instead of one per rerun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_one_error_lists_everything_a_run_needs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("IMGBENCH_DATA_DIR", "HF_ENDPOINT")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf-cache"), IMGBENCH_OFFLINE="1",
               HF_HUB_OFFLINE="1", IMGBENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "imgbench", "run", "--method", "img", "--model", "sdxl", "--task",
                           "drawbench", "--scorer", "clipscore", "--output", str(tmp_path / "results")],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert "6 things this run needs are missing; fetch them all" in err
    for needed in ("drawbench/DrawBench Prompts.csv", "hf download stabilityai/stable-diffusion-xl-base-1.0",
                   "hf download h94/IP-Adapter", "hf download shi-labs/IMG aligner_sdxl.pth",
                   "img_templates/edit_instructions.json", "hf download shi-labs/IMG --include 'llava/*'",
                   "hf download openai/clip-vit-large-patch14"):
        assert needed in err, needed
    assert not (tmp_path / "results").exists()  # a refused run writes nothing
