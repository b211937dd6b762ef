"""Shared parts of the scale-out tests (issue 23): torchrun launches and a run folder's content, shard files merged.

A launch is real: `python -m torch.distributed.run --standalone` (the torchrun console script, found without
PATH), gloo on CPU. Content is what must not depend on the world size: image and artefact bytes, generation
records without their timing fields, score rows and metrics.json, each record merged over the shard files by
(prompt_id, seed), with an item recorded twice being a failure ("nothing made twice").
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMING_FIELDS = ("seconds",)
"""Dropped at any depth: a record's own time and its info's cost share (method_steps.Cost) are wall time."""


def torchrun_command(nproc: int, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "imgbench", *map(str, args)]


def torchrun(nproc: int, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `imgbench ARGS` under torchrun with `nproc` ranks and wait; fails loudly with the ranks' output."""
    done = subprocess.run(torchrun_command(nproc, *args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


def merged_records(files: list[Path], root: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every record of a family's shard files by key, timing fields dropped and the output folder's path made
    relative (a reused image is named by its absolute path)."""
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8").replace(str(root), "OUT")
        for line in text.splitlines():
            record = without_timing(json.loads(line))
            key = (record["prompt_id"], record["seed"])
            assert key not in records, f"{key} recorded twice in {path.parent}"
            records[key] = record
    return records


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    return value


def run_content(output: Path) -> dict[str, Any]:
    """Per run folder: file bytes of images and artefacts, merged records and rows, metrics.json."""
    content: dict[str, Any] = {}
    for run in sorted(p for p in output.glob("runs/*/*/*/*") if (p / "run.json").exists()):
        files = {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for folder in ("images", "artefacts") for p in sorted((run / folder).rglob("*")) if p.is_file()}
        scorers = sorted({p.name.split(".")[0] for p in (run / "scores").glob("*.jsonl")})
        rows = {key: merged_records(sorted((run / "scores").glob(f"{key}*.jsonl")), output) for key in scorers}
        metrics = (run / "metrics.json").read_bytes() if (run / "metrics.json").exists() else None
        content[str(run.relative_to(output))] = {
            "files": files, "generations": merged_records(sorted(run.glob("generations*.jsonl")), output),
            "scores": rows, "metrics": metrics}
    return content
