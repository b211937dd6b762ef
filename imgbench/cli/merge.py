"""`imgbench merge`: metrics of a run whose shards ran apart (SLURM array tasks, hand-started --shard)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  imgbench merge results/runs/drawbench/sdxl/base/3f2a9c1b7d4e
  sbatch --dependency=afterok:$ARRAY_JOB --wrap "imgbench merge RUN"   (after an array job; docs/scale.md)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("merge", help="write the metrics of a run made by separate shards",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder whose shards (--shard I/N, array tasks) have all finished")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from imgbench.cli.console import output_console
    from imgbench.cli.summary import metrics_table
    from imgbench.merge import merge_run

    merged = merge_run(args.run)
    console = output_console()
    console.print(f"folder: {merged.store.root}")
    console.print(metrics_table(merged.metrics, title=f"{merged.task.spec.name}: {len(merged.items)} items"))
    return 0
