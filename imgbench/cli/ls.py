"""`imgbench ls`: what is registered. Reads YAML only — never imports torch or a target."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  imgbench ls tasks
  imgbench ls models
  imgbench ls            # everything
"""

KINDS = {"tasks": "task", "models": "model", "methods": "method", "scorers": "scorer"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ls", help="list tasks, models, methods or scorers", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=[*KINDS, "all"], default="all")
    parser.set_defaults(handler=main)


def _task_table(registry):
    from rich.table import Table

    table = Table(title="tasks")
    for column in ("name", "description", "prompts", "tags", "default model", "license", "source"):
        table.add_column(column, overflow="fold")
    for entry in registry:
        spec = entry.spec
        tags = ", ".join(f"{k} {v}" for k, v in spec.tags.items()) or "-"
        source = spec.source.get("url") or spec.source.get("paper") or "-"
        table.add_row(spec.name, spec.description, str(spec.size or "?"), tags, spec.default_model or "-",
                      str(spec.source.get("license", "-")), str(source))
    return table


def _component_table(kind: str, registry):
    from rich.table import Table

    table = Table(title=f"{kind}s")
    info_keys = sorted({k for entry in registry for k in entry.spec.info})
    for column in ("name", "description", "source", "needs", *info_keys):
        table.add_column(column.replace("_", " "), overflow="fold")
    for entry in registry:
        spec = entry.spec
        name = spec.name + (f" ({', '.join(spec.aliases)})" if spec.aliases else "")
        table.add_row(name, spec.description, spec.source or "-", ", ".join(spec.needs) or "-",
                      *(str(spec.info.get(k, "-")) for k in info_keys))
    return table


def main(args: argparse.Namespace) -> int:
    from imgbench import catalog
    from imgbench.cli.console import output_console

    console = output_console()
    kinds = list(KINDS) if args.what == "all" else [args.what]
    for plural in kinds:
        kind = KINDS[plural]
        registry = catalog.registry(kind)
        console.print(_task_table(registry) if kind == "task" else _component_table(kind, registry))
    return 0
