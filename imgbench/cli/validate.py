"""`imgbench validate`: check every YAML, target and prompt checksum without generating anything.

Exit 0 only when everything was checked and is fine; 2 when something is wrong; 1 when nothing is wrong
but something could not be checked (a suite's files absent offline, a target's optional package not
installed), so "ok" never hides what was not looked at.
"""

from __future__ import annotations

import argparse
from collections import Counter

from imgbench.cli.common import add_data_dir_option

EXAMPLES = """examples:
  imgbench validate
  imgbench validate --task tiny
  imgbench validate --task drawbench --data-dir ../shared/suites
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check specs, targets and task data", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", help="only these tasks (default: all)")
    add_data_dir_option(parser)
    parser.set_defaults(handler=main)


def _check_targets(problems: list[str], unchecked: list[str], notes: list[str]) -> None:
    from imgbench import catalog
    from imgbench.api.registry import import_target
    from imgbench.errors import UserError

    for kind in ("model", "method", "scorer"):
        for entry in catalog.registry(kind):
            try:
                import_target(entry.spec.target, entry.spec.needs, what=f"{kind} {entry.name!r}")
            except UserError as exc:
                (unchecked if "not installed" in str(exc) else problems).append(str(exc))
            if kind == "model" and "revision" in entry.spec.params and entry.spec.params["revision"] is None:
                notes.append(f"model {entry.name!r}: revision is unpinned; the served commit is recorded per run.")


def _check_task(spec, problems: list[str], unchecked: list[str], notes: list[str]) -> None:
    from imgbench import catalog
    from imgbench.errors import UserError
    from imgbench.suites.fetch import DataUnavailable
    from imgbench.task import load_task

    for scorer in spec.scorers:
        if scorer not in catalog.scorers():
            problems.append(f"task {spec.name!r} ({spec.yaml_path}): unknown scorer {scorer!r}.")
    if spec.default_model and spec.default_model not in catalog.models():
        problems.append(f"task {spec.name!r} ({spec.yaml_path}): unknown default_model {spec.default_model!r}.")
    if not spec.prompts.content_sha256 and not spec.prompts.path:
        notes.append(f"task {spec.name!r}: no reference content checksum pinned (no verifiable copy of "
                     f"{spec.source.get('url') or spec.prompts.url or 'its source'}); runs record the checksum "
                     f"they see in run.json.")
    try:
        task = load_task(spec)
    except DataUnavailable as exc:  # not here and not downloadable now: not a defect of the task, but unchecked
        unchecked.append(str(exc))
        return
    except UserError as exc:  # a changed, damaged or incomplete copy: a mismatch is an error, never a note
        problems.append(str(exc))
        return
    if spec.size is not None and len(task.prompts) != spec.size:
        problems.append(f"task {spec.name!r}: declares size {spec.size} but has {len(task.prompts)} prompts.")
    counts = Counter(t for p in task.prompts for t in p.tags)
    for tag, declared in spec.tags.items():
        if counts.get(tag, 0) != declared:
            problems.append(f"task {spec.name!r}: declares {declared} prompts tagged {tag!r}, "
                            f"found {counts.get(tag, 0)}.")


def main(args: argparse.Namespace) -> int:
    from imgbench import catalog
    from imgbench.cli.console import output_console
    from imgbench.errors import UserError

    console = output_console()
    problems: list[str] = []
    unchecked: list[str] = []
    notes: list[str] = []
    registries = {kind: catalog.registry(kind) for kind in catalog.KINDS}  # parses every YAML, strictly
    for method in registries["method"]:
        for model in registries["model"]:
            try:
                catalog.method_defaults(method.spec, model.spec)
            except UserError as exc:
                problems.append(str(exc))
    _check_targets(problems, unchecked, notes)
    names = args.task or registries["task"].names()
    for name in names:
        _check_task(registries["task"].get(name).spec, problems, unchecked, notes)
    for note in dict.fromkeys(notes):
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    for item in dict.fromkeys(unchecked):
        console.print(f"[yellow]unchecked[/]: {item}", highlight=False)
    for problem in dict.fromkeys(problems):
        console.print(f"[red]problem[/]: {problem}", highlight=False)
    counts = ", ".join(f"{len(r.names())} {k}s" for k, r in registries.items())
    if problems:
        console.print(f"validate: {len(problems)} problem(s) in {counts}")
        return 2
    if unchecked:
        console.print(f"validate: no problem found, but {len(dict.fromkeys(unchecked))} thing(s) could not be "
                      f"checked (listed as 'unchecked' above; `imgbench download --task NAME --model dummy --scorer "
                      f"dummy` fetches a suite's files, or give --data-dir) in {counts}")
        return 1
    console.print(f"validate: ok ({counts} checked)")
    return 0
