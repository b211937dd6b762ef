"""Two concurrent shard processes write one run folder identical in content to an unsharded run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ARGS = ("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--scorer", "dummy")


def _content(out: Path) -> tuple[set, set, bytes]:
    (run,) = (out / "runs" / "tiny" / "dummy" / "dummy").iterdir()
    generations = {(r["prompt_id"], r["seed"], r["sha256"], json.dumps(r.get("artefacts"), sort_keys=True))
                   for f in run.glob("generations*.jsonl") for r in map(json.loads, f.read_text().splitlines())}
    scores = {(r["prompt_id"], r["seed"], r["image_sha256"], r["value"])
              for f in (run / "scores").glob("*.jsonl") for r in map(json.loads, f.read_text().splitlines())}
    return generations, scores, (run / "metrics.json").read_bytes()


def test_two_concurrent_shards_equal_one_unsharded_run(tmp_path):
    env = {**os.environ}
    single = subprocess.run([sys.executable, "-m", "imgbench", *ARGS, "--output", tmp_path / "single"],
                            capture_output=True, env=env)
    assert single.returncode == 0
    shards = [subprocess.Popen([sys.executable, "-m", "imgbench", *ARGS, "--output", str(tmp_path / "sharded"),
                                "--shard", f"{i}/2", "--method-arg", "delay=0.02"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for i in (0, 1)]
    for proc in shards:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    (run,) = (tmp_path / "sharded" / "runs" / "tiny" / "dummy" / "dummy").iterdir()
    assert sorted(p.name for p in run.glob("generations*.jsonl")) == ["generations.shard-0-of-2.jsonl",
                                                                      "generations.shard-1-of-2.jsonl"]
    generations, scores, metrics = _content(tmp_path / "sharded")
    assert len(generations) == len(scores) == 24
    assert (generations, scores, metrics) == _content(tmp_path / "single")


def test_a_second_process_on_the_same_shard_is_refused(tmp_path):
    first = subprocess.Popen([sys.executable, "-m", "imgbench", *ARGS, "--output", str(tmp_path),
                              "--method-arg", "delay=0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("runs/*/*/*/*/generations.jsonl")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "imgbench", *ARGS, "--output", tmp_path],
                                capture_output=True, text=True)
        assert second.returncode == 2 and "another imgbench process is writing generations" in second.stderr
        assert "wait for it to finish" in second.stderr and "--shard" not in second.stderr  # a shard would redo items
    finally:
        first.kill()
        first.wait()
