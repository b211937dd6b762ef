"""Shared helpers for the statistics / report / plot tests: dummy-model runs made through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imgbench.cli import main


def make_runs(output: Path, *variants: tuple[str, list[str]], seeds: str = "0-1") -> None:
    """Run `imgbench run --model dummy --task tiny` once per (method, method args) with the dummy scorer."""
    for method, method_args in variants:
        argv = ["run", "--task", "tiny", "--model", "dummy", "--method", method, "--seeds", seeds,
                "--output", str(output)]
        for arg in method_args:
            argv += ["--method-arg", arg]
        assert main(argv) == 0


STANDARD = (("base", []), ("dummy", ["salt=x"]), ("dummy", ["salt=y"]))


def item_scores(run_dir: Path) -> dict[tuple[str, int], float]:
    """Per-item dummy scores read straight from the JSONL files (independent of imgbench's loaders)."""
    values = {}
    for path in sorted((run_dir / "scores").glob("dummy@*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            values[(row["prompt_id"], row["seed"])] = row["value"]
    return values


def prompt_mean(values: dict[tuple[str, int], float]) -> float:
    prompts: dict[str, list[float]] = {}
    for (prompt, _), value in values.items():
        prompts.setdefault(prompt, []).append(value)
    return float(np.mean([np.mean(v) for v in prompts.values()]))


def run_dir(output: Path, method: str, salt: str | None = None) -> Path:
    for manifest in sorted(output.glob(f"runs/tiny/dummy/{method}/*/run.json")):
        params = json.loads(manifest.read_text())["identity"]["method"]["params"]
        if salt is None or params.get("salt") == salt:
            return manifest.parent
    raise AssertionError(f"no run of {method} with salt {salt}")
