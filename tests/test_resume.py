"""Crash safety: SIGKILL at the worst moments, then a rerun equals an uninterrupted run.

Runs are real subprocesses. Kill points come from delays (mid-phase) and from named failpoints
(imgbench.util.failpoints): half a JSONL record written, metrics.json written but not renamed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgbench.runner import scorer_key
from imgbench.testing import DummyScorer

ARGS = ("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--scorer", "dummy")


def _start(out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "imgbench", *ARGS, "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def _run_dir(out: Path) -> Path:
    (run,) = (out / "runs" / "tiny" / "dummy" / "dummy").iterdir()
    return run


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.02)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _finish_and_check(out: Path, reference: Path) -> None:
    done = _start(out)
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    run, ref = _run_dir(out), _run_dir(reference)
    assert (run / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    generations = _lines(run / "generations.jsonl")  # every line parses: nothing truncated is left
    keys = [(r["prompt_id"], r["seed"]) for r in generations]
    assert len(keys) == len(set(keys)) == 24, "records lost or duplicated"
    digests = {(r["prompt_id"], r["seed"]): r["sha256"] for r in generations}
    assert digests == {(r["prompt_id"], r["seed"]): r["sha256"] for r in _lines(ref / "generations.jsonl")}
    (scores,) = (run / "scores").glob("*.jsonl")
    rows = _lines(scores)
    assert len({(r["prompt_id"], r["seed"]) for r in rows}) == len(rows) == 24
    assert not list(run.rglob("*.tmp")), "a temp file of the killed process was left behind"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert _start(out).wait(timeout=120) == 0
    return out


def test_kill_during_generation(tmp_path, reference):
    proc = _start(tmp_path, "--method-arg", "delay=0.05")  # delay is timing only: same run id
    _wait_for(lambda: len(_lines_safe(tmp_path)) >= 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= len(_lines_safe(tmp_path)) < 24
    _finish_and_check(tmp_path, reference)


def _lines_safe(out: Path) -> list[str]:
    runs = list((out / "runs").glob("tiny/dummy/dummy/*/generations.jsonl"))
    return runs[0].read_text().splitlines() if runs else []


@pytest.mark.parametrize("point", ["partial-record:generations.jsonl", "partial-score", "before-rename:metrics.json"])
def test_kill_at_a_failpoint(tmp_path, reference, point):
    if point == "partial-score":
        point = f"partial-record:{scorer_key(DummyScorer())}.jsonl"
    marker = tmp_path / "reached"
    proc = _start(tmp_path, env={"IMGBENCH_FAILPOINT": point, "IMGBENCH_FAILPOINT_FILE": str(marker)})
    _wait_for(marker.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _run_dir(tmp_path)
    if point.startswith("partial-record"):
        damaged = run / "generations.jsonl" if "generations" in point else next((run / "scores").glob("*.jsonl"))
        assert not damaged.read_bytes().endswith(b"\n"), "the kill should leave half a record"
    else:
        assert not (run / "metrics.json").exists() and list(run.glob(".metrics.json.*.tmp"))
    _finish_and_check(tmp_path, reference)


def test_damaged_image_is_reported_and_redone(tmp_path, reference):
    assert _start(tmp_path).wait(timeout=120) == 0
    image = _run_dir(tmp_path) / "images" / "2" / "1.png"
    image.write_bytes(b"not a png")
    proc = _start(tmp_path)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert b"does not match its recorded sha256" in stderr
    # The regenerated image is bit-identical, so its score row (keyed by image sha256) stays valid.
    assert b"generated 1 image(s); scored dummy 0" in stdout
    assert image.read_bytes()[:4] == b"\x89PNG"
    ref_metrics = (_run_dir(reference) / "metrics.json").read_bytes()
    assert (_run_dir(tmp_path) / "metrics.json").read_bytes() == ref_metrics
