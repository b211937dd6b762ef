"""`imgbench train <what>`: training commands (the shapes world's components, IMG aligners).

Each trainer lives with its component and is listed in TRAINERS as 'module' exposing
`add_arguments(parser)` and `main(args) -> int`; this module only dispatches.
"""

from __future__ import annotations

import argparse
import importlib

EXAMPLES = """examples:
  imgbench train --help
"""

#: Trainer name → module with add_arguments(parser) and main(args).
TRAINERS: dict[str, str] = {}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a component (see `imgbench train --help`)",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    trainers = parser.add_subparsers(dest="trainer", metavar="WHAT", required=True)
    for name, module_name in TRAINERS.items():
        module = importlib.import_module(module_name)
        sub = trainers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
