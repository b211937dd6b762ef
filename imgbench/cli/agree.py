"""`imgbench agree`: how well two scorers agree on the same images (meta-evaluation)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES = """examples:
  imgbench agree --task shapes-count --scorers shapes-exact,clipscore
  imgbench agree --task tiny --scorers dummy,other --runs dummy/base,dummy/dummy@salt=x --json agree.json

The first scorer is the reference for pairwise accuracy (e.g. exact truth in the shapes world).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("agree", help="rank agreement of two scorers on the same images", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="task the runs were made on")
    parser.add_argument("--scorers", required=True, metavar="REF,OTHER", help="two scorers: reference,other")
    parser.add_argument("--runs", action="append", metavar="RUN,RUN",
                        help="runs whose images to use (default: every run on the task scored by both)")
    parser.add_argument("--output", default="results", help="results folder holding runs/ (results)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (0)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from rich.table import Table

    from imgbench.agreement import agreement
    from imgbench.cli.common import output_folder
    from imgbench.cli.console import output_console
    from imgbench.errors import UserError
    from imgbench.selection import load_scores, scan_runs, scorer_key, select_run, split_selectors

    names = [n.strip() for n in args.scorers.split(",") if n.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise UserError(f"--scorers takes two different scorers, e.g. --scorers shapes-exact,clipscore; got "
                        f"{args.scorers!r}.")
    runs = scan_runs(args.output, args.task)
    if args.runs:
        runs = list(dict.fromkeys(select_run(runs, s) for s in split_selectors(args.runs)))
    else:
        def has(run, name: str) -> bool:
            return any(k == name or k.split("@")[0] == name for k in run.store.scorer_keys())

        runs = [r for r in runs if has(r, names[0]) and has(r, names[1])]
        if not runs:
            raise UserError(f"no run on task {args.task!r} is scored by both {names[0]} and {names[1]}; score runs "
                            f"with `imgbench score --run RUN --scorer {names[0]},{names[1]}`.")
    prompt_ids, reference, other, keys, nonfinite, unmatched = [], [], [], set(), 0, 0
    for run in runs:
        a, b = (load_scores(run, scorer_key(run, n)) for n in names)
        keys.add((a.scorer_key, b.scorer_key))
        unmatched += len(set(a.values) ^ set(b.values))
        for item in sorted(set(a.values) & set(b.values)):
            va, vb = a.values[item], b.values[item]
            if not (abs(va) < float("inf") and abs(vb) < float("inf")):
                nonfinite += 1
                continue
            # Images of different runs for one prompt are compared with each other: group by prompt only.
            prompt_ids.append(item[0])
            reference.append(va)
            other.append(vb)
    if len(keys) > 1:
        raise UserError(f"the runs were scored by different scorer versions ({sorted(keys)}); rescore them with one.")
    result = agreement(prompt_ids, reference, other, seed=args.seed)
    (key_a, key_b), = keys
    console = output_console()
    console.print(f"{args.task}: {key_b} against reference {key_a} on {result.n_images} images of "
                  f"{result.n_prompts} prompts from {len(runs)} run(s); {nonfinite} non-finite pair(s) and "
                  f"{unmatched} image(s) scored by only one scorer left out.")
    table = Table(title=f"agreement of {names[1]} with {names[0]}")
    for column in ("measure", "value", "95% CI", "over"):
        table.add_column(column, justify="left" if column in ("measure", "over") else "right")

    def fmt(x: float | None) -> str:
        return "n/a" if x is None or x != x else f"{x:.3f}"

    for name, triple, over in (("Spearman ρ", result.spearman, "images"), ("Kendall τ-b", result.kendall, "images"),
                               ("pairwise accuracy", result.pairwise_accuracy,
                                f"{result.n_pairs} same-prompt pairs ({result.reference_ties} reference ties out)")):
        table.add_row(name, fmt(triple[0]), f"[{fmt(triple[1])}, {fmt(triple[2])}]", over)
    console.print(table)
    console.print(f"cluster bootstrap over prompts, {result.bootstrap['samples']} draws, seed {args.seed}; a pair "
                  f"tied only by {names[1]} counts ½.")
    if args.json:
        output_folder(Path(args.json).parent, "the folder of --json")
        Path(args.json).write_text(json.dumps({"task": args.task, "reference": key_a, "other": key_b,
                                               "runs": [r.run_id for r in runs], **result.to_dict()}, indent=2),
                                   encoding="utf-8")
    return 0
