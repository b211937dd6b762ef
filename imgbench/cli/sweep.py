"""`imgbench sweep`: a grid of method variants, each a normal (cached, resumable) run."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from typing import Any

from imgbench.cli.common import add_generation_options, add_scorer_option, add_selection_options, add_task_options

EXAMPLES = """examples:
  imgbench sweep --method dummy --model dummy --task tiny --param salt=a,b,c
  imgbench sweep --method img --task drawbench --param ip_scale=0.1,0.2,0.4 --param steps=1,3 --seeds 0-3
then plot it:
  imgbench plot --task drawbench --method img --param ip_scale --baseline sdxl/base
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="run a grid of method parameter values", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--param", action="append", required=True, metavar="K=V1,V2",
                        help="a method parameter and its values (repeatable: the grid is their product)")
    add_task_options(parser)
    add_generation_options(parser)
    add_selection_options(parser)
    add_scorer_option(parser)
    parser.set_defaults(handler=main)


def parse_grid(values: list[str]) -> list[dict[str, Any]]:
    """['a=1,2', 'b=x'] → [{a: 1, b: 'x'}, {a: 2, b: 'x'}] with values read as YAML scalars (as --method-arg)."""
    from imgbench.errors import UserError
    from imgbench.util.text import parse_key_values

    axes: dict[str, list[Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(f"--param expects key=v1,v2,..., got {item!r} (e.g. --param ip_scale=0.1,0.2,0.4).")
        if key in axes:
            raise UserError(f"--param {key} is given twice; list all its values in one flag.")
        axes[key] = [parse_key_values([f"{key}={v}"], "--param")[key] for v in raw.split(",")]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def main(args: argparse.Namespace) -> int:
    from rich.table import Table

    from imgbench.cli.common import run_request
    from imgbench.cli.console import output_console
    from imgbench.errors import UserError
    from imgbench.runner import command_line, execute

    base = run_request(args, command_line())
    grid = parse_grid(args.param)
    clash = sorted(set(grid[0]) & set(base.method_args))
    if clash:
        raise UserError(f"{', '.join(clash)} is both swept (--param) and fixed (--method-arg); keep one.")
    console = output_console()
    table = Table(title=f"sweep of {base.method} on {base.task or base.prompts_file}: {len(grid)} runs")
    for column in ("parameters", "run", "generated", "primary scorer", "mean [95% two-way CI]"):
        table.add_column(column)
    seen: dict[str, str] = {}
    notes: dict[str, None] = {}
    for point in grid:
        outcome = execute(replace(base, method_args={**base.method_args, **point}), score=True)
        label = ", ".join(f"{k}={v}" for k, v in point.items())
        if outcome.plan.run_id in seen:
            # A parameter that does not change pixels (e.g. a delay) maps two grid points to one run.
            console.print(f"note: {label} is the same run as {seen[outcome.plan.run_id]} ({outcome.plan.run_id}); "
                          f"that parameter is not part of the method's identity.")
        seen.setdefault(outcome.plan.run_id, label)
        metrics = outcome.metrics
        if metrics is None:
            summary, primary = "incomplete (other shards pending)", ""
        else:
            primary = metrics["primary_scorer"]
            key = next(k for k in metrics["scorers"] if k.split("@")[0] == primary)
            overall = metrics["scorers"][key]["overall"]
            summary = f"{overall['mean']:.4f} [{overall['ci_low']:.4f}, {overall['ci_high']:.4f}]"
            notes.setdefault(overall["note"], None)
        table.add_row(label, outcome.plan.run_id, str(outcome.generated), primary, summary)
    table.caption = ("metrics.json of each run: prompts and seeds crossed, t interval with Satterthwaite df "
                     "(docs/statistics.md)")
    console.print(table)
    for note in filter(None, notes):
        console.print(f"note: {note}")
    first = args.param[0].partition("=")[0]
    console.print(f"plot it: imgbench plot --task {base.task} --method {base.method} --param {first} "
                  f"--output {base.output}")
    return 0
