"""`imgbench generate`: the generation phase only (score later with `imgbench score --run`)."""

from __future__ import annotations

import argparse

from imgbench.cli.common import add_generation_options, add_selection_options, add_task_options, run_request

EXAMPLES = """examples:
  imgbench generate --method base --model dummy --task tiny --seeds 0-1
  imgbench generate --method img --model sdxl --task geneval --shard 1/4 --batch-size 8
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate images only (no scoring)", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_task_options(parser)
    add_generation_options(parser)
    add_selection_options(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from imgbench.cli.summary import print_outcome
    from imgbench.distributed import launched
    from imgbench.runner import command_line, execute

    with launched() as ranks:
        print_outcome(execute(run_request(args, command_line(), ranks), score=False))
    return 0
