"""Runner overhead, cached-rerun cost and `imgbench ls` start-up, measured in one run.

    python benchmarks/runner_overhead.py [--images 200] [--delay 0.05]

Overhead = `imgbench generate` of N 512×512 images from the dummy model (DELAY s per image,
records fsynced) / a plain loop calling the same model and writing the same PNGs and fsynced
records the same way. Target: ≤ 1.05×. Both sides run in this process, back to back.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.runner import RunRequest, execute
from imgbench.testing import DummyModel
from imgbench.util.hashing import sha256_bytes
from imgbench.util.io import JsonlAppender, atomic_write_bytes


def direct_loop(prompts: list[Prompt], delay: float, out: Path) -> float:
    model = DummyModel(delay=delay)
    start = time.perf_counter()
    with JsonlAppender(out / "records.jsonl") as records:
        for prompt in prompts:
            (image,) = model.generate([GenerationRequest(prompt=prompt, seed=0, height=512, width=512)])
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
            atomic_write_bytes(out / prompt.id / "0.png", data)
            records.append({"prompt_id": prompt.id, "seed": 0, "sha256": sha256_bytes(data)})
    return time.perf_counter() - start


def through_runner(prompt_file: Path, delay: float, out: Path) -> float:
    request = RunRequest(prompts_file=str(prompt_file), model="dummy", method="base", seeds=(0,), output=out,
                         model_args={"delay": delay})
    start = time.perf_counter()
    execute(request, score=False)
    return time.perf_counter() - start


def ls_time() -> tuple[float, bool]:
    code = ("import sys, time; t = time.perf_counter(); from imgbench.cli import main; main(['ls', 'tasks']); "
            "print(time.perf_counter() - t, 'torch' in sys.modules, file=sys.stderr)")
    best, imported = float("inf"), False
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        imported = imported or out.stderr.split()[-1] == "True"
    return best, imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("IMGBENCH_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        prompt_file = tmp_path / "prompts.txt"
        prompt_file.write_text("\n".join(f"prompt number {i}" for i in range(args.images)) + "\n")
        prompts = [Prompt(id=str(i), text=f"prompt number {i}") for i in range(args.images)]
        direct, first = float("inf"), float("inf")
        for attempt in range(args.repeats):
            direct = min(direct, direct_loop(prompts, args.delay, tmp_path / f"direct{attempt}"))
            first = min(first, through_runner(prompt_file, args.delay, tmp_path / f"runner{attempt}"))
        cached = through_runner(prompt_file, args.delay, tmp_path / "runner0")
    ls_seconds, torch_imported = ls_time()
    result = {
        "images": args.images, "delay_s": args.delay, "repeats": args.repeats,
        "direct_s": round(direct, 3), "runner_s": round(first, 3),
        "runner_overhead_ratio": round(first / direct, 4), "cached_rerun_s": round(cached, 3),
        "cached_over_first_ratio": round(cached / first, 4), "ls_tasks_wall_s": round(ls_seconds, 3),
        "ls_imports_torch": torch_imported,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
