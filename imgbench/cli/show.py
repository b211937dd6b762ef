"""`imgbench show run|task`: one run's manifest and metrics, or one task's categories."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from imgbench.cli.common import add_data_dir_option
from imgbench.errors import UserError

EXAMPLES = """examples:
  imgbench show task tiny
  imgbench show task drawbench --data-dir ../shared/suites
  imgbench show run results/runs/tiny/dummy/dummy/3f2a9c1b7d4e
  imgbench show run 3f2a9c1b7d4e --output results
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("show", help="show a run or a task", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["run", "task"])
    parser.add_argument("name", help="run folder or run id; or task name")
    parser.add_argument("--output", default="results", help="results folder to search for a run id")
    add_data_dir_option(parser)
    parser.set_defaults(handler=main)


def find_run(name: str, output: str) -> Path:
    """A run folder given as a path, or found by its id (or a unique prefix) under OUTPUT/runs."""
    from imgbench.util.text import check_name

    path = Path(name)
    if path.is_dir():
        return path
    check_name(name, "run id")
    matches = sorted(p for p in Path(output).glob(f"runs/*/*/*/{name}*") if p.is_dir())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"no run folder or run id {name!r} under {output}/runs; list runs with "
                        f"`ls {output}/runs/*/*/*`.")
    raise UserError(f"run id {name!r} is ambiguous: {', '.join(map(str, matches))}; give more of it.")


def _show_task(name: str) -> None:
    from rich.table import Table

    from imgbench import catalog
    from imgbench.cli.console import output_console
    from imgbench.task import load_task

    spec = catalog.tasks().get(name).spec
    task = load_task(spec)
    console = output_console()
    console.print(f"[bold]{spec.name}[/] v{spec.version}: {spec.description}")
    for key, value in spec.source.items():
        console.print(f"  {key}: {value}")
    console.print(f"  prompts: {len(task.prompts)}  seeds: {list(spec.seeds)}  size: {spec.height}x{spec.width}")
    console.print(f"  scorers: {', '.join(spec.scorers) or '-'} (primary {spec.primary_scorer or '-'})  "
                  f"default model: {spec.default_model or '-'}")
    pinned = "published list verified" if spec.prompts.content_sha256 else "nothing pinned; runs record it"
    console.print(f"  content sha256: {task.checksum} ({pinned})")
    console.print(f"  data: {task.origin}")
    counts = Counter(t for p in task.prompts for t in p.tags)
    table = Table(title="tags")
    table.add_column("tag")
    table.add_column("prompts", justify="right")
    for tag, count in sorted(counts.items()):
        table.add_row(tag, str(count))
    console.print(table)


def _show_run(name: str, output: str) -> None:
    from imgbench.cli.console import output_console
    from imgbench.cli.summary import metrics_problem, metrics_table
    from imgbench.metrics import SCHEMA_VERSION
    from imgbench.store import RunStore

    store = RunStore(find_run(name, output))
    manifest = store.read_manifest()
    console = output_console()
    console.print(f"[bold]run {manifest['run_id']}[/] {manifest['task']} / {manifest['model']} / {manifest['method']}")
    console.print(f"folder: {store.root}")
    console.print(json.dumps(manifest["identity"], indent=2, sort_keys=True))
    generations = store.load_generations(verify=False)
    console.print(f"images: {len(generations)}; scorers: {', '.join(store.scorer_keys()) or '-'}")
    metrics, problem = store.read_metrics()
    problem = problem or metrics_problem(metrics)
    if metrics is not None and isinstance(metrics.get("schema_version"), int) and \
            metrics["schema_version"] != SCHEMA_VERSION:
        console.print(f"metrics.json has schema {metrics.get('schema_version')} (prompt-only intervals), this "
                      f"imgbench writes {SCHEMA_VERSION}; rerun the run's `imgbench run` command to rewrite it.")
    elif problem is None:
        console.print(metrics_table(metrics, title=f"metrics over {metrics['item_set']['n_items']} items"))
    elif problem == "missing":
        console.print("no metrics.json yet (the requested items are not all generated and scored).")
    else:
        console.print(f"metrics.json is {problem}: rerun the command that made the run (invocations.jsonl lists "
                      f"it) to recompute it from the records.")


def main(args: argparse.Namespace) -> int:
    if args.what == "task":
        _show_task(args.name)
    else:
        _show_run(args.name, args.output)
    return 0
