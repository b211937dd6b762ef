"""Scale-out throughput on this machine (issue 23): 2 ranks × 1 thread under torchrun against 1 rank × 1 thread,
and against two plain independent `--shard` processes started together, measured in one run.

    python benchmarks/scaling.py [--limit N] [--seeds 0-3] [--batch-size 64] [--steps S]

Each variant runs `imgbench run --task shapes` (method base, the shipped weights) into a fresh results folder,
with OMP_NUM_THREADS=MKL_NUM_THREADS=1 per process, and is timed from start to the last process's exit (start-up
included: a user waits for it too). Throughput = items / wall seconds; the processes' CPU seconds are printed
beside it (on a loaded machine they show the work, where the wall time shows the neighbours). Targets on an idle
machine with ≥ 2 cores: torchrun 2×1 ≥ 1.6× of 1×1, and ≥ 0.9× of the two hand-started shards (what the launcher
costs).
Every variant must write the same metrics.json; the script says so, or exits 1.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_VS_ONE = 1.6
TARGET_VS_SHARDS = 0.9


def _command(out: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    command = ["imgbench", "run", "--task", "shapes", "--method", "base", "--seeds", args.seeds,
               "--batch-size", str(args.batch_size), "--output", str(out), *extra]
    if args.limit:
        command += ["--limit", str(args.limit)]
    if args.steps:
        command += ["--model-arg", f"steps={args.steps}"]
    return command


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(commands: list[list[str]]) -> tuple[float, float]:
    """Start every command at once (each a Python module run), wait for all: (wall seconds, CPU seconds of the
    processes). A failure stops here."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpu = _cpu_seconds()
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", *command], env=env, stdout=subprocess.DEVNULL)
             for command in commands]
    codes = [proc.wait() for proc in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a benchmark process failed (exit codes {codes}): {commands}")
    return seconds, _cpu_seconds() - cpu


def _metrics(out: Path) -> bytes:
    (path,) = out.glob("runs/*/*/*/*/metrics.json")
    return path.read_bytes()


def _items(args: argparse.Namespace) -> int:
    from imgbench.task import load_task, resolve_task
    from imgbench.util.text import parse_seeds

    return len(load_task(resolve_task("shapes", None)).select((), args.limit)) * len(parse_seeds(args.seeds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts (default: all 240)")
    parser.add_argument("--seeds", default="0-3", help="seeds (default 0-3, the README's first command)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    args = parser.parse_args()
    items = _items(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = _timed([_command(root / "one", args)])
        ranks = _timed([["torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                         *_command(root / "ranks", args)]])
        shards = _timed([_command(root / "shards", args, "--shard", f"{i}/2") for i in range(2)])
        same = _metrics(root / "one") == _metrics(root / "ranks") == _metrics(root / "shards")
    timings = {"1 rank x 1 thread": one, "torchrun 2 ranks x 1 thread": ranks,
               "2 --shard processes x 1 thread": shards}
    for name, (wall, cpu) in timings.items():
        print(f"{name}: {items} items in {wall:.1f} s, {items / wall:.2f} items/s ({cpu:.1f} CPU s)")
    print(f"torchrun 2x1 / 1x1: {one[0] / ranks[0]:.2f}x (target >= {TARGET_VS_ONE} on an idle machine)")
    print(f"torchrun 2x1 / two --shard processes: {shards[0] / ranks[0]:.2f}x (target >= {TARGET_VS_SHARDS})")
    print(f"metrics.json identical across the three: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
