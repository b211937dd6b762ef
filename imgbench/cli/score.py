"""`imgbench score`: score a run folder, or any folder of images with its prompts."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgbench.cli.common import add_scorer_args_option, add_scorer_option, add_task_options

EXAMPLES = """examples:
  imgbench score --run results/runs/tiny/dummy/base/3f2a9c1b7d4e --scorer dummy
  imgbench score --images my_images/ --task drawbench --scorer clipscore,pickscore
  imgbench score --images my_images/ --prompts my_prompts.txt --scorer clipscore
  torchrun --nproc-per-node 4 -m imgbench score --run-dir results/runs/drawbench/sdxl/base/3f2a9c1b7d4e
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score a run or a folder of images", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", "--run-dir", dest="run",
                        help="run folder made by `imgbench run` / `generate` (spell it --run-dir after torchrun, "
                             "whose own parser takes --run for an abbreviation of its --run-path)")
    source.add_argument("--images", help="folder of <prompt_id>/<seed>.png images made by anything")
    add_task_options(parser)
    add_scorer_option(parser)
    add_scorer_args_option(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="images per scorer call")
    parser.add_argument("--output", default="results", help="where a run folder for --images is created")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from imgbench.cli.common import scorer_args, scorer_names
    from imgbench.cli.console import output_console
    from imgbench.cli.summary import metrics_table
    from imgbench.distributed import launched
    from imgbench.errors import UserError
    from imgbench.runner import build_scorers, command_line
    from imgbench.scoring import score_folder, score_run
    from imgbench.task import load_task, resolve_task

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.run and (args.task or args.prompts):
        raise UserError("--run already knows its task; drop --task / --prompts.")
    with launched() as ranks:
        if args.run:
            outcome = score_run(args.run, scorer_names(args), args.batch_size, command_line(), scorer_args(args),
                                ranks)
        else:
            task = load_task(resolve_task(args.task, args.prompts, text_column=args.text_column))
            scorers = build_scorers(scorer_names(args) or task.spec.scorers, scorer_args(args))
            store = _index_once(Path(args.images), task, Path(args.output), ranks)
            outcome = score_folder(store, task, scorers, args.batch_size, command_line(), ranks)
        if not ranks.speaks():
            return 0
    console = output_console()
    console.print(f"folder: {outcome.store.root}")
    console.print("scored " + ", ".join(f"{name} {count}" for name, count in outcome.scored.items()))
    if outcome.metrics is not None:
        console.print(metrics_table(outcome.metrics, title=f"{outcome.task.spec.name}: {len(outcome.items)} items"))
    return 0


def _index_once(images: Path, task, output: Path, ranks):  # -> RunStore
    """The run folder for --images, made by rank 0 alone (the others wait, then find it); ranks that cannot meet
    (no process group) would race to make it, so they are refused with the two-step way round."""
    from imgbench.errors import UserError
    from imgbench.scoring import index_external_images

    if ranks.world > 1 and not ranks.group:
        raise UserError(f"score --images under {ranks.launcher} without a process group: the ranks cannot agree "
                        f"on who makes the run folder. Run `imgbench score --images ...` once in one process "
                        f"(it prints the folder), then score that folder under the launcher with --run FOLDER.")
    if ranks.rank == 0:
        store = index_external_images(images, task, output)
    ranks.barrier()
    if ranks.rank != 0:
        store = index_external_images(images, task, output)
    return store
