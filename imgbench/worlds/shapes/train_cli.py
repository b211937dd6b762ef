"""`imgbench train shapes <component>`: train, evaluate and export the shapes world's networks.

Imported only when the command runs, and even then torch loads only inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.io import atomic_write_text
from imgbench.worlds.shapes.seeds import LLAVA_DATA_FIRST_SEED, TEST_SEEDS, VAL_SEEDS

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"

EPILOG = """examples:
  # train the text encoder + UNet (resumes from WORKDIR/checkpoint.pt if present)
  nice -n 10 imgbench train shapes unet --workdir /work/shapes-train/unet --minutes 60 --snapshot-every 500
  # the contrastive CLIP behind the shapes-clip scorer, exported into the package when done
  nice -n 10 imgbench train shapes clip --workdir /work/shapes-train/clip --steps 1500 --export
  # the IP-Adapter on the shipped UNet and CLIP, exported next to them when done
  nice -n 10 imgbench train shapes ip-adapter --workdir /work/shapes-train/ip --steps 3000 --export
  # the MLLM (edit instructions): the shipped model draws the train captions, the checker names each fix,
  # then training mixes those drawings with renders; and its caption-only ablation
  imgbench train shapes llava-data --out /work/shapes-train/llava-data.npz
  nice -n 10 imgbench train shapes llava --workdir /work/shapes-train/llava --steps 1500 \\
    --generated /work/shapes-train/llava-data.npz --export
  nice -n 10 imgbench train shapes llava --base --workdir /work/shapes-train/llava-base --steps 1500 --export
  # the Instruct-Pix2Pix editor shapes-ip2p on drawings (from llava-data) and renders, exported when done (the
  # shipped one ran four more cosine cycles from there: docs/instruct-pix2pix.md)
  nice -n 10 imgbench train shapes ip2p --workdir /work/shapes-train/ip2p --steps 3000 --anneal-steps 3000 \\
    --generated /work/shapes-train/llava-data.npz --threads 2 --export
  # shapes-detector (SLD's detector) on the same drawings and train-caption renders; then P/R vs the checker
  nice -n 10 imgbench train shapes detector --workdir /work/shapes-train/detector --steps 1500 --anneal-steps 1500 \
    --generated /work/shapes-train/llava-data.npz --export
  imgbench train shapes eval-detector --split val,test --out results/shapes/sld/detector.json
  # instruction accuracy of the shipped MLLMs vs the majority instruction
  imgbench train shapes eval-llava
  # on a new machine: continue from the weights committed to the repo (fresh optimiser state)
  nice -n 10 imgbench train shapes unet --workdir /tmp/unet --init-from imgbench/worlds/shapes/weights --steps 20000
  # IP-Adapter: how often a scene comes back from its own image tokens (empty caption, new seed)
  imgbench train shapes eval-ip --source renders,generated
  # branch a run at its checkpoint (weights + optimiser) and anneal the learning rate to 0 over 1500 steps
  nice -n 10 imgbench train shapes unet --workdir /work/shapes-train/unet-anneal \
    --init-from /work/shapes-train/unet --anneal-from 5500 --anneal-steps 1500 --steps 7000 --snapshot-every 250
  # score every snapshot on the val split (exact checker) at a few guidance scales
  imgbench train shapes eval --workdir /work/shapes-train/unet --guidance 1,1.5,2
  # copy the chosen snapshot into the package (weights/ + manifest.json)
  imgbench train shapes export --workdir /work/shapes-train/unet --step 3000 --guidance 1.5
"""


def share(text: str) -> float:
    """argparse type: a fraction of the batch, 0 to 1 (argparse turns the error into exit status 2)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer not below `minimum` (a batch of 0 or -1 threads is refused with exit 2,
    not discovered as an internal error mid-run)."""

    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}")
        return value

    return integer


def positive(text: str) -> float:
    """argparse type: a number above 0 (minutes, learning rates)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    sub = parser.add_subparsers(dest="component", required=True, metavar="COMPONENT")
    unet = _trainer(sub, "unet", "text encoder + UNet (the text-to-image model)", steps=20000, batch=64)
    unet.add_argument("--checkpoint-minutes", type=positive, default=5.0, help="resumable checkpoint interval")
    unet.add_argument("--snapshot-every", type=at_least(0), default=500,
                      help="save EMA weights every N steps (0: never)")
    unet.add_argument("--lr", type=positive, default=1e-3)
    _add_anneal_arguments(unet)
    unet.add_argument("--tiny", action="store_true", help="a tiny network (smoke tests)")
    unet.add_argument("--init-from", default="", metavar="DIR",
                      help="warm-start a new --workdir from another run's --workdir (its checkpoint), or from "
                           "exported weights or a snapshot (e.g. the shipped weights)")

    clip = _trainer(sub, "clip", "image encoder + text tower, contrastive (scorer shapes-clip)", steps=1500, batch=128)
    clip.add_argument("--tiny", action="store_true", help="a tiny network (smoke tests)")
    clip.add_argument("--export", nargs="?", const=str(WEIGHTS_DIR / "clip"), default=None, metavar="DIR",
                      help="when done, write the weights + manifest here (default: the package's weights/clip)")

    ip = _trainer(sub, "ip-adapter", "IP-Adapter by reconstruction (base UNet and CLIP frozen)", steps=3000, batch=64)
    ip.add_argument("--base", default=str(WEIGHTS_DIR), help="frozen text encoder + UNet folder (default: shipped)")
    ip.add_argument("--clip", default=str(WEIGHTS_DIR / "clip"), help="frozen CLIP folder (default: shipped)")
    ip.add_argument("--caption-dropout", type=share, default=0.5,
                    help="share of rows trained with an empty caption, so the image tokens alone carry the scene")
    ip.add_argument("--high-noise-share", type=share, default=0.0,
                    help="share of rows whose timestep comes from the noisier half of the schedule (the scene's)")
    _add_anneal_arguments(ip)
    ip.add_argument("--export", nargs="?", const=str(WEIGHTS_DIR), default=None, metavar="DIR",
                    help="when done, write ip_adapter/ and image_encoder/ here (default: the package's weights/)")

    lv = _trainer(sub, "llava", "the MLLM: edit instructions from checker diffs (--base: captions only)", steps=1500,
                  batch=64)
    lv.add_argument("--base", action="store_true", help="caption-only training (shapes-llava-base)")
    lv.add_argument("--clip", default=str(WEIGHTS_DIR / "clip"), help="CLIP folder that initialises the vision tower")
    lv.add_argument("--tiny", action="store_true", help="a tiny network with a random vision tower (smoke tests)")
    lv.add_argument("--generated", default="", metavar="NPZ",
                    help="the shapes model's drawings with their fixes (from `llava-data`), half of each batch")
    lv.add_argument("--export", nargs="?", const="", default=None, metavar="DIR",
                    help="when done, write the weights here (default: the package's weights/llava[-base])")

    ed = _trainer(sub, "ip2p", "the Instruct-Pix2Pix editor shapes-ip2p, finetuned from the shipped model",
                  steps=3000, batch=64)
    ed.add_argument("--base", default=str(WEIGHTS_DIR), help="the text-to-image weights it starts from (shipped)")
    ed.add_argument("--generated", default="", metavar="NPZ",
                    help="the shapes model's drawings of train captions (from `llava-data`) as sources")
    ed.add_argument("--generated-share", type=share, default=0.5, help="share of rows whose source is a drawing")
    ed.add_argument("--lr", type=positive, default=3e-4)
    ed.add_argument("--dropout", type=share, default=0.05,
                    help="share of rows without instruction, without both, and without source (each)")
    ed.add_argument("--init-from", default="", metavar="DIR",
                    help="continue another ip2p --workdir's run (weights, optimiser, step) under these options")
    _add_anneal_arguments(ed)
    ed.add_argument("--export", nargs="?", const=str(WEIGHTS_DIR / "ip2p"), default=None, metavar="DIR",
                    help="when done, write the editor here (default: the package's weights/ip2p)")

    de = _trainer(sub, "detector", "shapes-detector: per-pixel colour and shape, for SLD (drawings + renders)",
                  steps=1500, batch=32)
    de.add_argument("--generated", default="", metavar="NPZ",
                    help="the shapes model's drawings of train captions (from `llava-data`)")
    de.add_argument("--generated-share", type=share, default=0.5, help="share of rows whose image is a drawing")
    de.add_argument("--renders", type=at_least(0), default=6088, help="size of the pool of train-caption renders")
    de.add_argument("--lr", type=positive, default=3e-3)
    de.add_argument("--width", type=at_least(1), default=16, help="channels of the U-Net's first level")
    _add_anneal_arguments(de)
    de.add_argument("--export", nargs="?", const=str(WEIGHTS_DIR / "detector"), default=None, metavar="DIR",
                    help="when done, write the detector here (default: the package's weights/detector)")

    ed2 = sub.add_parser("eval-detector", help="shapes-detector vs the checker's reading of held-out drawings")
    ed2.add_argument("--weights", default=str(WEIGHTS_DIR), help="shapes weights that draw (default: shipped)")
    ed2.add_argument("--detector", default=str(WEIGHTS_DIR / "detector"), help="detector folder (default: shipped)")
    ed2.add_argument("--split", default="val,test", help="caption splits (comma-separated)")
    ed2.add_argument("--seeds", default=",".join(map(str, TEST_SEEDS)), help="comma-separated drawing seeds")
    ed2.add_argument("--images-from", default="", metavar="RUNS",
                     help="comma-separated `--method base` run folders of the same model whose images to reuse")
    ed2.add_argument("--out", required=True, help="JSON summary")
    ed2.add_argument("--threads", type=at_least(1), default=1)

    ld = sub.add_parser("llava-data", help="draw the train captions, label each with its fix (for --generated)")
    ld.add_argument("--weights", default=str(WEIGHTS_DIR), help="shapes weights that draw (default: shipped)")
    ld.add_argument("--per-caption", type=at_least(1), default=2, help="drawings per train caption")
    ld.add_argument("--first-seed", type=at_least(0), default=LLAVA_DATA_FIRST_SEED,
                    help="drawing i uses this seed + i (must stay in the parts' range 1,000-99,999: DESIGN §8)")
    ld.add_argument("--out", required=True, help="the .npz to write (outside git)")
    ld.add_argument("--threads", type=at_least(1), default=1)

    el = sub.add_parser("eval-llava", help="instruction accuracy on misaligned generated test images")
    el.add_argument("--weights", default=str(WEIGHTS_DIR), help="shapes weights that draw the test images")
    el.add_argument("--llava", default=str(WEIGHTS_DIR / "llava"), help="shapes-llava weights folder")
    el.add_argument("--llava-base", default=str(WEIGHTS_DIR / "llava-base"), help="shapes-llava-base weights folder")
    el.add_argument("--split", default="test", choices=["val", "test"])
    el.add_argument("--seeds", default=None, help="comma-separated seeds (default: the split's task seeds)")
    el.add_argument("--threads", type=at_least(1), default=1)

    ee = sub.add_parser("eval-ip2p", help="shapes-ip2p edit fidelity vs regeneration on drawings with known fixes")
    ee.add_argument("--weights", default=str(WEIGHTS_DIR), help="shapes weights that draw (default: shipped)")
    ee.add_argument("--editor", default=str(WEIGHTS_DIR / "ip2p"), help="shapes-ip2p folder (default: shipped)")
    ee.add_argument("--split", default="val,test", help="caption splits (comma-separated)")
    ee.add_argument("--seeds", default=",".join(map(str, TEST_SEEDS)), help="comma-separated drawing seeds")
    ee.add_argument("--guidance", default="3.0", help="text guidance scales (comma-separated: one result each)")
    ee.add_argument("--image-guidance", default="1.5", help="image guidance scales (comma-separated)")
    ee.add_argument("--steps", type=at_least(1), default=25, help="DDIM steps of the editor")
    ee.add_argument("--nothing-limit", type=at_least(1), default=None,
                    help="thin the 'nothing to change' rows to about this many")
    ee.add_argument("--no-regeneration", action="store_true", help="skip the regeneration baseline")
    ee.add_argument("--out", required=True, help="JSON summary (per-item rows go beside it as .jsonl)")
    ee.add_argument("--threads", type=at_least(1), default=1)

    ei = sub.add_parser("eval-ip", help="IP-Adapter: regenerate scenes from their own tokens, empty caption")
    ei.add_argument("--weights", default=str(WEIGHTS_DIR), help="exported shapes weights with an ip_adapter/")
    ei.add_argument("--source", default="renders,generated", help="renders and/or generated (comma-separated)")
    ei.add_argument("--split", default="val", choices=["val", "test", "train"])
    ei.add_argument("--ip-scale", type=float, default=1.0)
    ei.add_argument("--guidance", type=float, default=None,
                    help="CFG scale; with an empty caption it guides by the image tokens (default: the weights')")
    ei.add_argument("--limit", type=at_least(1), default=10_000, help="at most this many source images per kind")
    ei.add_argument("--threads", type=at_least(1), default=1)

    ev = sub.add_parser("eval", help="exact-checker accuracy of snapshots on the val split")
    ev.add_argument("--workdir", required=True)
    ev.add_argument("--guidance", default="1.0", help="comma-separated CFG scales")
    ev.add_argument("--seeds", default="100", help="comma-separated seeds (val seeds are 100-107)")
    ev.add_argument("--split", default="val", choices=["val", "test", "train"])
    ev.add_argument("--steps", type=at_least(0), default=None, help="only this snapshot step")
    ev.add_argument("--sample-steps", type=at_least(1), default=25, help="DDIM steps")
    ev.add_argument("--threads", type=at_least(1), default=1)

    ex = sub.add_parser("export", help="copy a snapshot into the package's weights/ with a manifest")
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--step", type=at_least(0), required=True)
    ex.add_argument("--guidance", type=float, required=True, help="the CFG scale chosen on val")
    ex.add_argument("--out", default=str(WEIGHTS_DIR))


def _trainer(sub: Any, name: str, summary: str, steps: int, batch: int) -> argparse.ArgumentParser:
    """A component's subcommand with the options every resumable trainer takes."""
    parser = sub.add_parser(name, help=summary)
    parser.add_argument("--workdir", required=True, help="checkpoints (and snapshots) go here (outside git)")
    parser.add_argument("--steps", type=at_least(0), default=steps, help="stop at this total step count")
    parser.add_argument("--minutes", type=positive, default=None, help="stop after this much wall time (this call)")
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--batch", type=at_least(1), default=batch)
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch CPU threads")
    return parser


TINY_UNET = {"block_out_channels": [16, 16, 32], "norm_num_groups": 8}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def main(args: argparse.Namespace) -> int:
    logging.getLogger("imgbench").setLevel(logging.INFO)  # training is long: its step log is the point
    import torch

    torch.set_num_threads(args.threads if hasattr(args, "threads") else 1)
    handlers = {"unet": _train_unet, "clip": _train_clip, "ip-adapter": _train_ip, "llava": _train_llava,
                "ip2p": _train_ip2p, "eval-ip2p": _eval_ip2p,
                "detector": _train_detector, "eval-detector": _eval_detector,
                "llava-data": _llava_data, "eval-llava": _eval_llava, "eval-ip": _eval_ip, "eval": _eval,
                "export": _export}
    return handlers[args.component](args)


def _train_unet(args: argparse.Namespace) -> int:
    from imgbench.progress import progress_bar
    from imgbench.worlds.shapes.train_unet import UNetTrainConfig, UNetTrainer

    config = UNetTrainConfig(seed=args.seed, batch=args.batch, lr=args.lr, anneal_from=args.anneal_from,
                             anneal_steps=args.anneal_steps,
                             unet=TINY_UNET if args.tiny else {}, text=TINY_TEXT if args.tiny else {},
                             init_from=str(Path(args.init_from).resolve()) if args.init_from else "")
    trainer = UNetTrainer(config, args.workdir)
    start = trainer.step
    with progress_bar(f"shapes unet (from step {start})", max(0, args.steps - start)) as advance:
        trainer.run(args.steps, minutes=args.minutes, checkpoint_minutes=args.checkpoint_minutes,
                    snapshot_every=args.snapshot_every, on_step=lambda _: advance(1))
    logger.info("stopped at step %d; %.0f s of training in total; checkpoint %s", trainer.step,
                trainer.wall_seconds, Path(args.workdir) / "checkpoint.pt")
    return 0


def _run_then_export(trainer: Any, label: str, args: argparse.Namespace, export: str | None) -> None:
    """Train with a progress bar, log where it stopped, and export once the target step is reached."""
    from imgbench.progress import progress_bar

    start = trainer.step
    with progress_bar(f"shapes {label} (from step {start})", max(0, args.steps - start)) as advance:
        trainer.run(args.steps, minutes=args.minutes, on_step=lambda _: advance(1))
    logger.info("stopped at step %d; %.0f s of training in total; loss %s", trainer.step, trainer.wall_seconds,
                trainer.history[-1] if trainer.history else None)
    if export and trainer.step >= args.steps:
        logger.info("exported to %s", trainer.export(export))


def _add_anneal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anneal-steps", type=at_least(0), default=0,
                        help="cosine-anneal the learning rate to 0 over this many steps (0: constant)")
    parser.add_argument("--anneal-from", type=at_least(0), default=0, help="the step the anneal starts at")


def _train_clip(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.clip import ClipTrainConfig, ClipTrainer

    tiny_vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = ClipTrainConfig(seed=args.seed, batch=args.batch, vision=tiny_vision if args.tiny else {},
                             text=TINY_TEXT if args.tiny else {})
    _run_then_export(ClipTrainer(config, args.workdir), "clip", args, args.export)
    return 0


def _train_ip(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.train_ip import IPTrainConfig, IPTrainer

    config = IPTrainConfig(base=str(Path(args.base).resolve()), clip=str(Path(args.clip).resolve()), seed=args.seed,
                           batch=args.batch, caption_dropout=args.caption_dropout,
                           high_noise_share=args.high_noise_share, anneal_from=args.anneal_from,
                           anneal_steps=args.anneal_steps)
    _run_then_export(IPTrainer(config, args.workdir), "ip-adapter", args, args.export)
    return 0


def _train_llava(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.llava_train import LlavaTrainConfig, LlavaTrainer

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = LlavaTrainConfig(base=args.base, clip="" if args.tiny else str(Path(args.clip).resolve()),
                              seed=args.seed, batch=args.batch, vision=tiny if args.tiny else {},
                              text={**tiny, "num_key_value_heads": 2} if args.tiny else {},
                              generated=str(Path(args.generated).resolve()) if args.generated else "")
    name = "llava-base" if args.base else "llava"
    export = None if args.export is None else (args.export or str(WEIGHTS_DIR / name))
    _run_then_export(LlavaTrainer(config, args.workdir), name, args, export)
    return 0


def _train_ip2p(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.train_ip2p import IP2PTrainConfig, IP2PTrainer

    config = IP2PTrainConfig(base=str(Path(args.base).resolve()), seed=args.seed, batch=args.batch, lr=args.lr,
                             generated=str(Path(args.generated).resolve()) if args.generated else "",
                             generated_share=args.generated_share, dropout=args.dropout,
                             anneal_from=args.anneal_from, anneal_steps=args.anneal_steps,
                             init_from=str(Path(args.init_from).resolve()) if args.init_from else "")
    _run_then_export(IP2PTrainer(config, args.workdir), "ip2p", args, args.export)
    return 0


def _eval_ip2p(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes import ip2p_eval
    from imgbench.worlds.shapes.ip2p import ShapesEditor
    from imgbench.worlds.shapes.model import ShapesModel

    model = ShapesModel(model_path=args.weights)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = ip2p_eval.items(model, args.split.split(","), seeds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reports = []
    for text_scale in (float(g) for g in args.guidance.split(",")):
        for image_scale in (float(g) for g in args.image_guidance.split(",")):
            editor = ShapesEditor(args.editor, args.steps, text_scale, image_scale)
            tick = time.monotonic()
            results = ip2p_eval.evaluate(model, editor, rows, regenerate=not args.no_regeneration,
                                         nothing_limit=args.nothing_limit)
            report = {"editor": editor.identity(), "splits": args.split, "seeds": seeds,
                      "nothing_limit": args.nothing_limit, "seconds": round(time.monotonic() - tick, 1),
                      **ip2p_eval.summary(results, rows)}
            reports.append(report)
            logger.info("cfg %.2f / image %.2f: %s", text_scale, image_scale, json.dumps(
                {"overall": report["overall_edits"], "none": report["per_kind"]["none"]}))
            with out.with_suffix(".jsonl").open("w" if len(reports) == 1 else "a") as handle:
                for row in results:
                    handle.write(json.dumps({"guidance": text_scale, "image_guidance": image_scale, **row}) + "\n")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2) + "\n")
    tmp.replace(out)
    return 0


def _train_detector(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.train_detector import DetectorTrainConfig, DetectorTrainer

    config = DetectorTrainConfig(generated=str(Path(args.generated).resolve()) if args.generated else "",
                                 generated_share=args.generated_share, renders=args.renders, seed=args.seed,
                                 batch=args.batch, lr=args.lr, anneal_from=args.anneal_from,
                                 anneal_steps=args.anneal_steps, width=args.width)
    if not config.generated and not config.renders:
        raise UserError("no training images: pass --generated NPZ (from `llava-data`) and/or --renders N > 0.")
    _run_then_export(DetectorTrainer(config, args.workdir), "detector", args, args.export)
    return 0


def _eval_detector(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes import detector_eval
    from imgbench.worlds.shapes.detector import ShapesDetector
    from imgbench.worlds.shapes.model import ShapesModel

    seeds = _seed_list(args.seeds)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    found = ShapesDetector(Path(args.detector))
    tick = time.monotonic()
    runs = [Path(r) for r in args.images_from.split(",") if r.strip()]
    report = detector_eval.evaluate(ShapesModel(model_path=args.weights), found, splits, seeds, runs)
    report["seconds"] = round(time.monotonic() - tick, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    logger.info("detector vs checker: %s", json.dumps(report["overall"]))
    return 0


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}.") from None
    if not seeds:
        raise UserError("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2.")
    return seeds


def _llava_data(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.llava_generated import build
    from imgbench.worlds.shapes.model import ShapesModel

    stats = build(ShapesModel(model_path=args.weights), args.out, per_caption=args.per_caption,
                  first_seed=args.first_seed)
    logger.info("llava data: %s", json.dumps({k: v for k, v in stats.items() if k != "model"}))
    return 0


def _eval_llava(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.llava import ShapesLlava
    from imgbench.worlds.shapes.llava_eval import evaluate
    from imgbench.worlds.shapes.model import ShapesModel

    folders = {"shapes-llava": Path(args.llava), "shapes-llava-base": Path(args.llava_base)}
    mllms = {name: ShapesLlava(model_path=str(folder)) for name, folder in folders.items()
             if (folder / "model.safetensors").exists()}
    if not mllms:
        raise UserError(f"no shapes LLaVA weights in {args.llava} or {args.llava_base}: "
                        f"`imgbench train shapes llava --workdir W --export`.")
    default = TEST_SEEDS if args.split == "test" else VAL_SEEDS
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(default)
    result = evaluate(ShapesModel(model_path=args.weights), mllms, split=args.split, seeds=seeds)
    logger.info("instruction accuracy: %s", json.dumps(result))
    return 0


def _eval_ip(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.ip_eval import reproduction
    from imgbench.worlds.shapes.model import ShapesModel

    model = ShapesModel(model_path=args.weights, guidance=args.guidance)
    for kind in args.source.split(","):
        if kind not in ("renders", "generated"):
            raise UserError(f"--source takes renders and/or generated, not {kind!r}.")
        result = reproduction(model, kind, args.split, limit=args.limit, ip_scale=args.ip_scale)
        logger.info("IP reproduction: %s", json.dumps(result))
    return 0


def _snapshots(workdir: Path, step: int | None) -> list[Path]:
    found = sorted((workdir / "snapshots").glob("step_*"))
    if step is not None:
        found = [p for p in found if p.name == f"step_{step:06d}"]
    if not found:
        raise UserError(f"no snapshot{f' for step {step}' if step is not None else ''} under {workdir}/snapshots; "
                        f"train with --snapshot-every first.")
    return found


def _eval(args: argparse.Namespace) -> int:
    from imgbench.worlds.shapes.evaluate import evaluate_snapshot

    workdir = Path(args.workdir)
    guidances = [float(g) for g in args.guidance.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    results_path = workdir / "eval.jsonl"
    for folder in _snapshots(workdir, args.steps):
        for guidance in guidances:
            tick = time.monotonic()
            result = evaluate_snapshot(folder, args.split, guidance, seeds, steps=args.sample_steps)
            result.update(snapshot=folder.name, seconds=round(time.monotonic() - tick, 1))
            with results_path.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
            logger.info("%s cfg %.2f: %s accuracy %.3f %s", folder.name, guidance, args.split, result["accuracy"],
                        {k: round(v, 2) for k, v in result["by_skill"].items()})
    return 0


def _export(args: argparse.Namespace) -> int:
    workdir, out = Path(args.workdir), Path(args.out)
    (folder,) = _snapshots(workdir, args.step)
    state = json.loads((folder / "train_state.json").read_text())
    evals = []
    if (workdir / "eval.jsonl").exists():
        evals = [json.loads(line) for line in (workdir / "eval.jsonl").read_text().splitlines() if line.strip()]
    metrics = [e for e in evals if e["snapshot"] == folder.name]
    for part in ("tokenizer", "text_encoder", "unet", "scheduler"):
        if (out / part).exists():
            shutil.rmtree(out / part)
        shutil.copytree(folder / part, out / part)
    manifest = {"component": "unet", "step": state["step"], "train_wall_seconds": state["wall_seconds"],
                "config": state["config"], "recent_train_loss": state["recent_loss"],
                "data": {"train_split": "imgbench.worlds.shapes.grammar.splits()['train']", "split_seed": 0,
                         "renders": "rendered on the fly, seeded by (seed, step)"},
                "sampling": {"guidance": args.guidance, "steps": 25, "sampler": "DDIM, trailing spacing"},
                "val_metrics": metrics}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("exported %s to %s", folder, out)
    return 0
