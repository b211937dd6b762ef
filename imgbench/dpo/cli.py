"""`imgbench train dpo`: Diffusion-DPO on preference pairs, for SD 1.5, SDXL and the shapes world (docs/dpo.md).

Imported only when the command runs; torch loads inside `main`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from typing import Any

from imgbench.worlds.shapes.train_cli import at_least, positive, share

logger = logging.getLogger(__name__)

EPILOG = """examples:
  # the shapes world, on the pairs the IMG aligner learns from (results/reproduce_shapes.sh pairs)
  nice -n 10 imgbench train dpo --model shapes --pairs results/runs/img-shapes/pairs.jsonl \\
      --workdir /work/shapes-train/dpo --out imgbench/worlds/shapes/weights-dpo --beta 5000 --lr 2.048e-5
  # SD 1.5 on a Pick-a-Pic v2 folder (parquet shards: caption, jpg_0, jpg_1, label_0), on a GPU
  imgbench train dpo --model sd15 --pairs pickapic_v2/train --device cuda --batch 2048 --accumulate 256 \\
      --steps 2000 --warmup 500 --lr 2.048e-5 --beta 5000 --caption-dropout 0.2 --workdir W --out dpo-sd15
  imgbench run --task drawbench --model sd15 --model-arg unet_path=dpo-sd15
Rerunning the same command resumes from WORKDIR/checkpoint.pt with the same batches; the UNet is written to
--out once --steps is reached.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--pairs", required=True,
                        help="pairs JSONL from `imgbench pairs`, or Pick-a-Pic v2 parquet (a file or a folder)")
    model = parser.add_argument_group("starting model (its UNet is trained; VAE and text encoders stay frozen)")
    model.add_argument("--model", required=True, help="registry model: sd15, sdxl, shapes, ... (`imgbench ls models`)")
    model.add_argument("--model-arg", action="append", metavar="K=V", help="model parameter (repeatable)")
    model.add_argument("--model-path", help="local folder with the model's weights")
    model.add_argument("--device", help="cpu, cuda, ... (default: the model's)")
    model.add_argument("--resolution", type=at_least(8), default=None,
                       help="training image side (default: 512 for sd15, 1024 for sdxl; shapes: 32)")
    obj = parser.add_argument_group("objective and optimisation (defaults: the authors' SD 1.5 launcher)")
    obj.add_argument("--beta", type=positive, default=5000.0, help="β, the KL penalty's inverse weight")
    obj.add_argument("--lr", type=positive, default=2.048e-5, help="AdamW learning rate after warm-up")
    obj.add_argument("--warmup", type=at_least(0), default=500, help="linear warm-up steps")
    obj.add_argument("--weight-decay", type=float, default=1e-2)
    obj.add_argument("--caption-dropout", type=share, default=0.0,
                     help="share of pairs trained with an empty caption (the authors' code: 0.2; shapes: 0)")
    obj.add_argument("--batch", type=at_least(1), default=64, help="pairs per optimiser step")
    obj.add_argument("--accumulate", type=at_least(1), default=1,
                     help="micro-batches per step (memory only: the gradient is the full batch's)")
    obj.add_argument("--steps", type=at_least(1), default=2000, help="stop at this total step count")
    obj.add_argument("--seed", type=at_least(0), default=0)
    run = parser.add_argument_group("run")
    run.add_argument("--workdir", required=True, help="checkpoint.pt goes here (outside git)")
    run.add_argument("--out", required=True, help="the trained UNet: OUT/unet/ and OUT/manifest.json")
    run.add_argument("--minutes", type=positive, default=None, help="stop after this much wall time (this call)")
    run.add_argument("--checkpoint-minutes", type=positive, default=5.0, help="resumable checkpoint interval")
    run.add_argument("--log-every", type=at_least(1), default=10, help="steps per logged loss/reward accuracy")
    run.add_argument("--threads", type=at_least(1), default=1, help="torch CPU threads")


def main(args: argparse.Namespace) -> int:
    logging.getLogger("imgbench").setLevel(logging.INFO)  # training is long: its step log is the point
    import torch

    from imgbench.dpo.backbones import base_digest, build_backbone
    from imgbench.dpo.data import PairData
    from imgbench.dpo.trainer import DPOConfig, DPOTrainer
    from imgbench.progress import progress_bar
    from imgbench.util.text import parse_key_values

    torch.set_num_threads(args.threads)
    data = PairData(args.pairs)
    model_args = parse_key_values(args.model_arg, "--model-arg")
    config = DPOConfig(model=args.model, model_args=model_args, model_path=args.model_path or "",
                       pairs=data.identity, seed=args.seed, batch=args.batch, accumulate=args.accumulate, lr=args.lr,
                       warmup=args.warmup, weight_decay=args.weight_decay, beta=args.beta,
                       caption_dropout=args.caption_dropout)  # checked before the model loads
    backbone, identity = build_backbone(args.model, model_args, args.model_path, args.device, args.resolution)
    backbone.check_training_pairs(data.pairs, data.seeds())
    config = replace(config, base_sha256=base_digest(identity), resolution=backbone.resolution)
    trainer = DPOTrainer(config, args.workdir, backbone, data)
    start = trainer.step
    with progress_bar(f"dpo {args.model} (from step {start})", max(0, args.steps - start)) as advance:
        trainer.run(args.steps, minutes=args.minutes, checkpoint_minutes=args.checkpoint_minutes,
                    log_every=args.log_every, on_step=lambda _: advance(1))
    if trainer.step < args.steps:
        logger.info("stopped at step %d of %d (%.0f s of training); rerun the same command to continue",
                    trainer.step, args.steps, trainer.wall_seconds)
        return 0
    trainer.export(args.out, _facts(backbone.family, identity, data))
    return 0


def _facts(family: str, identity: dict[str, Any], data: Any) -> dict[str, Any]:
    """The manifest's provenance: objective, starting model, pairs and the seeds they were drawn with (DESIGN §8)."""
    from imgbench import __version__
    from imgbench.provenance import data_record
    from imgbench.worlds.shapes.seeds import SPLIT_VERSION

    seeds = data.seeds()
    pairs = {**data.identity, "n": data.n}
    if seeds is None:
        record = {"seeds": None, "note": "the pairs do not record the seeds their images were drawn with"}
    else:
        record = data_record(seeds, SPLIT_VERSION if family == "shapes" else None, pairs=pairs["source"],
                             note="seeds of the pairs' winner and loser images")
    return {"objective": "Diffusion-DPO (Wallace et al., CVPR 2024): -log sigmoid(-beta/2 [(e_policy(w) - e_ref(w))"
                         " - (e_policy(l) - e_ref(l))]), e = per-sample MSE to the scheduler's training target",
            "base_model": identity, "pairs": pairs, "data": record, "imgbench_version": __version__}
