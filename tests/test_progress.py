"""Off a terminal a run prints a progress line at least every interval; third-party load bars stay quiet."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

LINE = re.compile(r"^(\d\d:\d\d:\d\d) generate base on dummy: (\d+)/24 items \(\d+%\), [\d.]+ items/s, (.*)$")


def test_a_run_into_a_file_prints_progress_lines_on_a_timer(tmp_path: Path) -> None:
    out = tmp_path / "stdout.txt"
    env = {**os.environ, "IMGBENCH_PROGRESS_EVERY": "1"}  # the default is 30 s; the timer is what is tested
    with out.open("w") as stdout:  # a file, as in a batch job
        done = subprocess.run([sys.executable, "-m", "imgbench", "run", "--method", "base", "--model", "dummy",
                               "--model-arg", "delay=0.25", "--task", "tiny", "--batch-size", "24", "--scorer",
                               "dummy", "--output", str(tmp_path / "results")], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [m for m in map(LINE.match, out.read_text().splitlines()) if m]
    # one batch of 24 images at 0.25 s each: the lines come from the timer, not from finished batches
    assert len(lines) >= 5, out.read_text()
    assert lines[0].group(3) == "eta after the first batch" and lines[-1].group(3).startswith("done in")
    times = [datetime.datetime.strptime(m.group(1), "%H:%M:%S") for m in lines]
    gaps = [(b - a).total_seconds() % 86400 for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 2, gaps  # every second, to the second the timestamps resolve
    assert "Loading" not in done.stderr and "it/s]" not in done.stderr


def test_model_loads_draw_no_third_party_bar_unless_verbose(tmp_path: Path) -> None:
    """transformers draws a "Loading weights" bar for every from_pretrained; imgbench turns it off."""
    save = """
import sys
from transformers import CLIPTextConfig, CLIPTextModel
config = CLIPTextConfig(vocab_size=99, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1)
CLIPTextModel(config).save_pretrained(sys.argv[1])
"""
    code = """
import sys
if sys.argv[2] == "quiet":  # as the CLI does: components are built (and quieted) before transformers loads
    from imgbench.util.quiet import quiet_loaders
    quiet_loaders()
from transformers import CLIPTextModel
CLIPTextModel.from_pretrained(sys.argv[1])
"""
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")}
    subprocess.run([sys.executable, "-c", save, str(tmp_path / "m")], check=True, capture_output=True, timeout=300)
    loud = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), "loud"], capture_output=True,
                          text=True, env=env, timeout=300)
    quiet = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m"), "quiet"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "Loading weights" in loud.stderr  # what the test would catch
    assert "Loading weights" not in quiet.stderr and quiet.stderr.strip() == "", quiet.stderr
