"""`imgbench pairs`: preference pairs (prompt, winner, loser) from a run ranked by a scorer."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  imgbench run --method dummy --model dummy --task tiny --scorer dummy
  imgbench pairs results/runs/tiny/dummy/dummy/<run_id> --scorer dummy --out pairs.jsonl
  imgbench pairs <run_id> --scorer pickscore --mode all --min-margin 0.1 --out pairs.jsonl
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pairs", help="build preference pairs from a run ranked by a scorer",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or run id (needs several seeds per prompt, scored)")
    parser.add_argument("--scorer", required=True, help="scorer name (or name@hash) whose values rank the seeds")
    parser.add_argument("--mode", default="best-worst", choices=["best-worst", "all"],
                        help="best-worst: one pair per prompt; all: every pair of seeds (default best-worst)")
    parser.add_argument("--min-margin", type=float, default=0.0, help="drop pairs whose scores differ by ≤ this")
    parser.add_argument("--out", required=True, help="pairs JSONL to write (input of `imgbench train img`)")
    parser.add_argument("--output", default="results", help="results folder to search for a run id")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from imgbench.cli.console import output_console
    from imgbench.cli.show import find_run
    from imgbench.errors import UserError
    from imgbench.manifest import check_writable_dir
    from imgbench.pairs import pairs_from_run, write_pairs

    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; give the pairs JSONL file to write, e.g. --out pairs.jsonl.")
    check_writable_dir(Path(args.out).parent, "--out")
    pairs = pairs_from_run(find_run(args.run, args.output), args.scorer, args.mode, args.min_margin)
    if not pairs:
        raise UserError("no pairs: every prompt has fewer than two scored seeds or only ties; generate more seeds "
                        "(--seeds 0-3) or lower --min-margin.")
    write_pairs(pairs, args.out)
    output_console().print(f"{len(pairs)} pairs from {len({p.prompt for p in pairs})} prompts → {args.out}")
    return 0
