"""`imgbench compare`: is method A better than the baseline on this task, and by how much?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from imgbench.cli.common import add_interval_options

EXAMPLES = """examples:
  imgbench compare --task tiny --baseline dummy/base --against dummy/dummy,dummy/dummy@salt=x
  imgbench compare --task drawbench --baseline sdxl/base --against sdxl/img,sdxl-dpo/base --scorer clipscore
  imgbench compare --task tiny --baseline 79f3a5ed211a --against 58fce73645ed --shared --json cmp.json
  imgbench compare --task tiny --baseline dummy/base --against dummy/dummy --interval product-bootstrap --seed 3

A run is named by its id (or a unique prefix) or by model/method[@k=v,...] (no @ = default parameters).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="paired statistics of runs against a baseline", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="task the runs were made on")
    parser.add_argument("--baseline", required=True, metavar="RUN", help="the reference run (id or selector)")
    parser.add_argument("--against", required=True, action="append", metavar="RUN,RUN",
                        help="runs to compare with the baseline (repeatable or comma-separated)")
    parser.add_argument("--scorer", action="append", help="scorers (repeatable or a,b; default: the task's)")
    parser.add_argument("--output", default="results", help="results folder holding runs/ (results)")
    parser.add_argument("--shared", action="store_true",
                        help="compare over the items all runs share instead of refusing runs whose items differ")
    parser.add_argument("--tie-tolerance", type=float, default=0.0,
                        help="|Δ| ≤ this per prompt (and per seed) is a tie (0)")
    add_interval_options(parser)
    parser.add_argument("--no-tags", action="store_true", help="skip the per-tag tables")
    parser.add_argument("--json", metavar="FILE", help="also write the full results as JSON")
    parser.set_defaults(handler=main)


def _task_scorers(task: str) -> list[str | None]:
    from imgbench import catalog

    if task in catalog.tasks():
        spec = catalog.tasks().get(task).spec
        return list(spec.scorers) or [None]
    return [None]


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _lines(words: list[str], per_line: int = 4) -> str:
    """Words four to a line: Δ per seed (and its seed list) stays narrow with 8 seeds or more."""
    return "\n".join(" ".join(words[i:i + per_line]) for i in range(0, len(words), per_line))


def render(result: dict[str, Any], block: dict[str, Any], title: str):
    from rich.table import Table

    from imgbench.paired import format_p, format_signed

    arrow = "↑" if result["higher_is_better"] else "↓"
    table = Table(title=title)
    seeds = _lines(list(next(iter(block["runs"].values()))["per_seed"]))
    # Two-line headers, Δ per seed four to a line and a verdict that may wrap keep the table ~150 columns wide.
    columns = {"run": None, f"mean {arrow}\n[95% CI]": None, "Δ vs baseline\n[95% CI]": None, "p\n(Holm)": None,
               f"Δ per seed\n({seeds})": None, "seeds\nw/t/l": None, "prompts\nw/t/l": None, "verdict": 15}
    for column, wrap_at in columns.items():
        table.add_column(column, justify="left" if column in ("run", "verdict") else "right", no_wrap=not wrap_at,
                         min_width=max(len(label) for label in block["runs"]) if column == "run" else wrap_at)
    for label, run in block["runs"].items():
        mean = f"{_fmt(run['mean'])} [{_fmt(run['ci_low'])}, {_fmt(run['ci_high'])}]"
        if label == result["baseline"]:
            table.add_row(label, mean, "(baseline)", "", "", "", "", "")
            continue
        c = block["comparisons"][label]
        per_seed = _lines(format_signed(c["per_seed_diff"].values()).split())
        table.add_row(label, mean, f"{c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]",
                      f"{format_p(c['p'])} ({format_p(c['p_holm'])})", per_seed,
                      f"{c['seeds_better']}/{c['seeds_tied']}/{c['seeds_worse']}",
                      f"{c['wins']}/{c['ties']}/{c['losses']}", c["verdict"])
    return table


def header(args: argparse.Namespace, result: dict[str, Any], n_against: int) -> str:
    """What was compared and how: items, prompts × seeds, the estimator and its caveats."""
    from imgbench.crossed import describe

    items = result["items"]
    how = describe(result["interval"]["method"], result["interval"])
    note = next(iter(result["overall"]["runs"].values()))["note"]
    return (f"[bold]{args.task}[/] · scorer {result['scorer']} · {items['n_compared']} items ({items['n_prompts']} "
            f"prompts × {items['n_seeds']} seeds) shared by all {n_against + 1} runs; {how}; Holm over {n_against} "
            f"comparison(s)." + (f"\n[yellow]note: {note}[/]" if note else ""))


def main(args: argparse.Namespace) -> int:
    from imgbench.cli.common import output_folder, scorer_names
    from imgbench.cli.console import output_console
    from imgbench.comparison import compare_runs
    from imgbench.errors import UserError
    from imgbench.selection import load_comparable, scan_runs, select_run, split_selectors

    selectors = split_selectors(args.against)
    if not selectors:
        raise UserError(f"--against names no run (got {', '.join(map(repr, args.against))}); give one or more run "
                        f"ids or model/method[@variant] selectors, e.g. --against dummy/dummy@salt=x.")
    runs = scan_runs(args.output, args.task)
    baseline = select_run(runs, args.baseline)
    against = [select_run(runs, s) for s in selectors]
    if args.json:
        output_folder(Path(args.json).parent, "the folder of --json")
    console = output_console()
    results = []
    for scorer in scorer_names(args) or _task_scorers(args.task):
        scores = load_comparable([baseline, *against], scorer)
        result = compare_runs(scores[0], scores[1:], shared=args.shared, tie_tolerance=args.tie_tolerance,
                              interval=args.interval, seed=args.seed)
        results.append(result)
        items = result["items"]
        console.print(header(args, result, len(against)))
        for label, count in items["left_out"].items():
            if count:
                console.print(f"  {label}: {count} item(s) not in every run left out "
                              f"({items['left_out_examples'][label]})")
        for label, lines in result["leaks"].items():
            for line in lines:
                console.print(f"  [bold red]{label}: {line}[/]")
        for label, count in items["nonfinite"].items():
            if count:
                console.print(f"  [yellow]{label}: {count} non-finite score(s); those items are left out of every "
                              f"run[/]")
        console.print(render(result, result["overall"], f"{args.task} · {result['scorer']} · all prompts"))
        if not args.no_tags:
            for tag, block in result["by_tag"].items():
                n = next(iter(block["runs"].values()))["n_prompts"]
                console.print(render(result, block, f"tag {tag} ({n} prompts)"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0
