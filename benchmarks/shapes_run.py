"""The README's first command on the shapes world: wall time and peak memory, measured in one run.

    python benchmarks/shapes_run.py [--method base|img] [--threads 2] [--batch-size 64] [--limit N]

Runs `imgbench run --method METHOD --task shapes` (240 prompts × seeds 0–3, the shipped weights) in
a child process with a fresh results folder, and prints its wall time and peak resident memory
(ru_maxrss of the child). Targets (issue 8, for base): ≤ 10 minutes and ≤ 2 GB on 2 CPU cores. With
`--method img` the run draws the base images itself first (nothing is cached in the fresh folder).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

TARGET_SECONDS = 600
TARGET_GB = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=["base", "img"], default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts (a quick look)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "imgbench", "run", "--method", args.method, "--task", "shapes",
                   "--batch-size", str(args.batch_size), "--output", out]
        if args.limit:
            command += ["--limit", str(args.limit)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        done = subprocess.run(command, env=env)
        seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    print(f"imgbench run --method {args.method} --task shapes{f' --limit {args.limit}' if args.limit else ''}: "
          f"exit {done.returncode}, wall {seconds:.0f} s (target ≤ {TARGET_SECONDS} s), "
          f"peak memory {peak_gb:.2f} GB (target ≤ {TARGET_GB} GB)")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
