"""`imgbench train <what>`: training commands (the shapes world's components, IMG aligners, Diffusion-DPO).

Each trainer lives with its component and is listed in TRAINERS as name → (module, one-line
help); the module exposes `add_arguments(parser)` and `main(args) -> int`. Trainer modules are
imported only when their command runs, so `imgbench ls` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib

#: Trainer name → (module with add_arguments(parser) and main(args), one-line help).
TRAINERS: dict[str, tuple[str, str]] = {
    "shapes": ("imgbench.worlds.shapes.train_cli", "the shapes world (unet, clip, ip-adapter, llava, eval, export)"),
    "img": ("imgbench.methods.img.train_cli", "IMG Implicit Aligner on preference pairs (IUPO objective)"),
    "dpo": ("imgbench.dpo.cli", "Diffusion-DPO: finetune a UNet (sd15, sdxl, shapes) on preference pairs"),
    "dpo-eval": ("imgbench.dpo.eval_cli", "a DPO UNet's implicit reward accuracy on held-out pairs, with 95% CIs"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  imgbench train {name} --help    {text}" for name, (_, text) in TRAINERS.items())
    parser = subparsers.add_parser("train", help="train a component (see `imgbench train --help`)",
                                   epilog=f"trainers:\n{listing or '  (none)'}",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(TRAINERS), metavar="WHAT", help="which trainer")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the trainer's own options")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    module_name, text = TRAINERS[args.what]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"imgbench train {args.what}", description=text,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(args.rest)) or 0)
