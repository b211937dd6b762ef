"""Seconds per Diffusion-DPO step of the shipped shapes UNet, the cost behind `shapes-dpo`'s training time.

    OMP_NUM_THREADS=1 python benchmarks/dpo_step.py [--steps 20] [--batch 64] [--threads 1]

Trains the shipped UNet (policy + frozen reference, `imgbench.dpo`) for --steps steps of --batch pairs on
render pairs (`imgbench.testing.render_pairs`: a train caption's render against another caption's; the cost
does not depend on what the pairs show), timing every `train_step` (pair loading, both UNets' forward passes on
2 × batch images, backward, AdamW). Prints one JSON line: the mean and median seconds over steps 2..N (step 1
pays one-off allocation), the machine's load average (another process on the cores slows every step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64, help="pairs per step")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from imgbench.dpo.backbones import base_digest, build_backbone
    from imgbench.dpo.data import PairData
    from imgbench.dpo.trainer import DPOConfig, DPOTrainer
    from imgbench.testing import render_pairs

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        data = PairData(render_pairs(Path(root) / "pairs", 4 * args.batch))
        backbone, identity = build_backbone("shapes", {}, None, None, None)
        config = DPOConfig(model="shapes", base_sha256=base_digest(identity), pairs=data.identity, batch=args.batch,
                           resolution=backbone.resolution)
        trainer = DPOTrainer(config, Path(root) / "work", backbone, data)
        seconds = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.train_step()
            seconds.append(time.perf_counter() - start)
    timed = seconds[1:] or seconds
    print(json.dumps({"steps": args.steps, "batch_pairs": args.batch, "threads": args.threads,
                      "s_per_step_mean": round(statistics.mean(timed), 3),
                      "s_per_step_median": round(statistics.median(timed), 3), "first_step_s": round(seconds[0], 3),
                      "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
