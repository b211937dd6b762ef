"""`imgbench report`: leaderboards (Markdown, CSV, JSON, LaTeX) and a static HTML report from run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgbench.cli.common import add_data_dir_option, add_interval_options

EXAMPLES = """examples:
  imgbench report --output results
  imgbench report --output results --task tiny --scorer dummy --out results/report-tiny
  imgbench report --output results --runs dummy/base,dummy/dummy@salt=x --task tiny
  imgbench report --output results --task drawbench --data-dir ~/suites
  imgbench report --output results --task tiny --baseline dummy/dummy@salt=a --interval product-bootstrap
"""

FILES = {"leaderboard.md": "to_markdown", "leaderboard.csv": "to_csv", "leaderboard.json": "to_json",
         "leaderboard.tex": "to_latex"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="leaderboards and an HTML report from the run folders",
                                   epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="results", help="results folder holding runs/ (results)")
    parser.add_argument("--task", action="append", help="only these tasks (repeatable or a,b; default: all)")
    parser.add_argument("--scorer", action="append", help="only these scorers (repeatable or a,b; default: all)")
    parser.add_argument("--runs", action="append", metavar="RUN,RUN",
                        help="only these runs (ids or model/method[@variant]; needs a single --task)")
    parser.add_argument("--out", help="where to write the report (default: OUTPUT/report)")
    parser.add_argument("--baseline", metavar="RUN", help="compare every other row with this run (id or "
                        "model/method[@variant]); default: each model's `base` row where the model has exactly one")
    add_interval_options(parser)
    parser.add_argument("--html-prompts", type=int, default=50, help="prompts per task shown with images (50)")
    add_data_dir_option(parser)  # the HTML report shows prompt texts, read from the suites
    parser.set_defaults(handler=main)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def main(args: argparse.Namespace) -> int:
    from imgbench import report
    from imgbench.cli.common import output_folder
    from imgbench.cli.console import output_console
    from imgbench.errors import UserError
    from imgbench.html_report import render_html
    from imgbench.selection import scan_runs, select_run, split_selectors
    from imgbench.util.io import atomic_write_text

    if args.html_prompts < 0:
        raise UserError(f"--html-prompts is the number of prompts shown with images per task (0 for none), got "
                        f"{args.html_prompts}.")
    tasks = _split(args.task)
    if args.runs and len(tasks) != 1:
        raise UserError("--runs names runs on one task: give exactly one --task with it.")
    runs = scan_runs(args.output, tasks[0] if len(tasks) == 1 else None)
    if len(tasks) > 1:
        runs = [r for r in runs if r.task in tasks]
        missing = sorted(set(tasks) - {r.task for r in runs})
        if missing:
            raise UserError(f"no runs for task(s) {', '.join(missing)} under {args.output}/runs.")
    if args.runs:
        runs = list(dict.fromkeys(select_run(runs, s) for s in split_selectors(args.runs)))
    board = report.build_leaderboard(runs, _split(args.scorer) or None, interval=args.interval, seed=args.seed,
                                     baseline=args.baseline)
    out = output_folder(Path(args.out) if args.out else Path(args.output) / "report", "the report folder")
    for name, renderer in FILES.items():
        atomic_write_text(out / name, getattr(report, renderer)(board))
    atomic_write_text(out / "index.html", render_html(board, out.resolve(), args.html_prompts))
    console = output_console()
    console.print(report.to_markdown(board), markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(out / n) for n in [*FILES, 'index.html'])}")
    return 0
