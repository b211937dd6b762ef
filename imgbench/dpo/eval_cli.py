"""`imgbench train dpo-eval`: a DPO UNet's implicit reward accuracy on held-out pairs, with 95% intervals.

The reference is the starting model its manifest names (rebuilt exactly, or refused if its weights changed);
the pairs should be val captions at val seeds (DESIGN §8), and the command says when they share seeds with the
UNet's training pairs. Imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from imgbench.worlds.shapes.train_cli import at_least

logger = logging.getLogger(__name__)

EPILOG = """examples:
  # held-out pairs: val captions at val seeds, ranked by the exact checker
  imgbench run --task shapes-val --model shapes --method base --scorer shapes-exact --output results/runs/dpo-val
  imgbench pairs RUN_ID --output results/runs/dpo-val --scorer shapes-exact --mode all --out val-pairs.jsonl
  imgbench train dpo-eval --unet imgbench/worlds/shapes/weights-dpo --pairs val-pairs.jsonl --out dpo-val.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--unet", required=True, help="a `imgbench train dpo --out` folder (unet/ + manifest.json)")
    parser.add_argument("--pairs", required=True, help="held-out pairs JSONL, or Pick-a-Pic v2 parquet")
    parser.add_argument("--timesteps", type=at_least(1), default=8, help="timestep strata per pair, averaged")
    parser.add_argument("--seed", type=at_least(0), default=0, help="seeds the noise, timesteps and bootstrap")
    parser.add_argument("--batch", type=at_least(1), default=32, help="pairs per forward pass")
    parser.add_argument("--model-path", help="the starting model's weights, if they moved since training")
    parser.add_argument("--device", help="cpu, cuda, ... (default: the model's)")
    parser.add_argument("--out", help="also write the result as JSON here")
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch CPU threads")


def main(args: argparse.Namespace) -> int:
    import torch
    from diffusers import UNet2DConditionModel

    from imgbench.cli.console import output_console
    from imgbench.dpo.backbones import base_digest, build_backbone
    from imgbench.dpo.evaluate import evaluate
    from imgbench.dpo.trainer import MANIFEST
    from imgbench.errors import UserError
    from imgbench.pairs import read_pair_source
    from imgbench.provenance import leaks, read_part
    from imgbench.util.io import atomic_write_json

    torch.set_num_threads(args.threads)
    folder = Path(args.unet)
    if not (folder / MANIFEST).is_file() or not (folder / "unet" / "config.json").is_file():
        raise UserError(f"--unet {folder}: expected unet/ and {MANIFEST}, as `imgbench train dpo --out DIR` writes.")
    if not Path(args.pairs).exists():
        raise UserError(f"pairs source {args.pairs} not found; make held-out pairs with `imgbench pairs`.")
    manifest = json.loads((folder / MANIFEST).read_text())
    config = manifest["config"]
    backbone, identity = build_backbone(config["model"], config["model_args"], args.model_path or
                                        config["model_path"] or None, args.device, config["resolution"])
    if base_digest(identity) != config["base_sha256"]:
        raise UserError(f"the starting model {config['model']!r} is not the one {folder} was trained from (its "
                        f"weights or settings changed), so it cannot be the reference; pass --model-path with the "
                        f"original weights.")
    reference = backbone.unet.float().eval()
    policy = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    policy = policy.to(reference.device).eval()
    result = evaluate(backbone, policy, reference, read_pair_source(args.pairs),
                      beta=float(config["beta"]), timesteps=args.timesteps, seed=args.seed, batch=args.batch)
    seeds = [s for low, high in result["pair_seeds"] for s in range(low, high + 1)]
    result.update(unet=str(folder), pairs=str(args.pairs),
                  not_held_out=leaks([read_part(f"unet {folder}", folder / MANIFEST)], seeds))
    for line in result["not_held_out"]:
        logger.warning(line)
    low, high = result["ci95_prompt_bootstrap"]
    output_console().print(f"implicit reward accuracy {result['reward_accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}, "
                           f"prompts resampled) on {result['n_pairs']} pairs from {result['n_prompts']} prompts, "
                           f"{args.timesteps} timesteps each")
    output_console().print(json.dumps(result))
    if args.out:
        atomic_write_json(args.out, result)
    return 0
