"""`imgbench run`: generate, score and aggregate one (task, model, method)."""

from __future__ import annotations

import argparse

from imgbench.cli.common import add_run_options, run_request

EXAMPLES = """examples:
  imgbench run --method dummy --model dummy --task tiny --scorer dummy
  imgbench run --method img --task drawbench --model sdxl --seeds 0-3 --batch-size 4
  imgbench run --task drawbench --tags counting,colors --data-dir ~/suites --model sdxl --scorer clipscore
  imgbench run --prompts my_prompts.txt --model sdxl --scorer clipscore --shard 0/2
  torchrun --nproc-per-node 4 -m imgbench run --task drawbench --model sdxl   (one rank per GPU; docs/scale.md)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="generate images, score them and write metrics", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from imgbench.cli.summary import print_outcome
    from imgbench.distributed import launched
    from imgbench.runner import command_line, execute

    with launched() as ranks:
        outcome = execute(run_request(args, command_line(), ranks), score=True)
        if ranks.speaks():
            print_outcome(outcome)
    return 0
