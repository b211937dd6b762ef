"""Options shared by several subcommands, and their conversion into a RunRequest."""

from __future__ import annotations

import argparse
from pathlib import Path

from imgbench.errors import UserError
from imgbench.util.text import parse_key_values, parse_seeds, parse_tags

DTYPES = ("fp32", "fp16", "bf16")


def output_folder(path: str | Path, what: str) -> Path:
    """Create the folder a command writes into; a path that is a file or cannot be created is the user's to fix."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder} exists and is not a folder; give a folder path.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {what} {folder} ({exc.strerror or exc}); give a writable folder.") from None
    return folder


def add_task_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("task")
    group.add_argument("--task", help="task name (see `imgbench ls tasks`)")
    group.add_argument("--prompts", metavar="FILE", help="your own prompts: TXT (one a line), CSV/TSV, JSONL or JSON")
    group.add_argument("--text-column", default="text", help="column holding the prompt text in --prompts (text)")
    add_data_dir_option(group)


def add_data_dir_option(parser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="local copies of published suites, one subfolder each as "
                        "upstream (default: $IMGBENCH_DATA_DIR, else the cache, else download)")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("which items")
    group.add_argument("--seeds", help="generator seeds, e.g. 0-3 or 0,5,9 (default: the task's)")
    group.add_argument("--limit", type=int, help="only the first N prompts")
    group.add_argument("--offset", type=int, default=0, help="skip the first N prompts (after --tags; before --limit)")
    group.add_argument("--tags", action="append", help="only prompts with these tags (repeatable or a,b)")
    group.add_argument("--shard", help="I/N: this process takes a deterministic 1/N share of the items")
    group.add_argument("--batch-size", type=int, default=None,
                       help="images per model call (default: the model's preferred size, 1 for diffusers models; "
                            "not part of the run id; recorded per image)")
    group.add_argument("--output", default="results", help="results folder (runs go to OUTPUT/runs/...)")


def add_generation_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and method")
    group.add_argument("--model", help="base model (default: the task's default_model)")
    group.add_argument("--method", default="base", help="alignment method (default: base)")
    group.add_argument("--method-arg", action="append", metavar="K=V", help="method parameter (repeatable)")
    group.add_argument("--model-arg", action="append", metavar="K=V", help="model parameter (repeatable)")
    group.add_argument("--model-path", help="local folder with the model's weights (a hub snapshot)")
    group.add_argument("--preset", help="a paper's sampling protocol, e.g. img-paper (docs/methods.md#presets); "
                                        "--model-arg overrides its values")
    group.add_argument("--device", help="cpu, cuda, cuda:1, mps ...")
    group.add_argument("--dtype", choices=DTYPES, help="weights/compute precision")


INTERVALS = ("two-way", "product-bootstrap", "prompt-bootstrap")
"""imgbench.crossed.ESTIMATORS, spelled out so that building the parser imports no numpy/scipy (a test checks)."""


def add_interval_options(parser: argparse.ArgumentParser) -> None:
    """--interval and --seed, the same in compare, report and plot (docs/statistics.md)."""
    parser.add_argument("--interval", choices=INTERVALS, default=INTERVALS[0],
                        help="how means and differences get their 95%% intervals and tests: two-way (prompts and "
                             "seeds crossed, t with Satterthwaite df; default), product-bootstrap (prompts and seeds "
                             "resampled), prompt-bootstrap (seeds averaged: conditional on the seeds)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (0; two-way draws nothing)")


def add_scorer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer", action="append", help="scorers, repeatable or a,b (default: the task's)")


def add_scorer_args_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer-arg", action="append", metavar="SCORER.K=V",
                        help="scorer parameter, e.g. vqascore.backend=llava-onevision (repeatable)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Every option of `imgbench run`; `imgbench download` takes the same, so a run's arguments can be pasted."""
    add_task_options(parser)
    add_generation_options(parser)
    add_selection_options(parser)
    add_scorer_option(parser)
    add_scorer_args_option(parser)


def scorer_args(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """`--scorer-arg name.key=value` → {name: {key: value}} (values read as YAML scalars)."""
    grouped: dict[str, list[str]] = {}
    for item in getattr(args, "scorer_arg", None) or []:
        target, sep, rest = item.partition(".")
        if not sep or "=" not in rest or not target:
            raise UserError(f"--scorer-arg expects SCORER.KEY=VALUE, got {item!r} "
                            f"(e.g. --scorer-arg vqascore.backend=llava-onevision).")
        grouped.setdefault(target, []).append(rest)
    return {name: parse_key_values(values, "--scorer-arg") for name, values in grouped.items()}


def scorer_names(args: argparse.Namespace) -> tuple[str, ...] | None:
    if not args.scorer:
        return None
    return tuple(n.strip() for value in args.scorer for n in value.split(",") if n.strip())


def run_request(args: argparse.Namespace, command: str, ranks=None):  # -> RunRequest (import kept lazy)
    """`ranks` (imgbench.distributed.Ranks) from a launcher choose the shard and the rank's GPU."""
    from imgbench.distributed import Ranks, choose_shard, rank_device
    from imgbench.runner import RunRequest

    ranks = ranks or Ranks()
    return RunRequest(
        task=args.task, prompts_file=args.prompts, text_column=args.text_column, model=args.model,
        method=args.method, method_args=parse_key_values(args.method_arg, "--method-arg"),
        model_args=parse_key_values(args.model_arg, "--model-arg"), model_path=args.model_path,
        preset=getattr(args, "preset", None),
        seeds=parse_seeds(args.seeds) if args.seeds is not None else None, limit=args.limit,
        offset=args.offset,
        tags=parse_tags(args.tags), shard=choose_shard(args.shard, ranks), ranks=ranks, batch_size=args.batch_size,
        device=rank_device(args.device, ranks), dtype=args.dtype, output=Path(args.output),
        scorers=scorer_names(args) if hasattr(args, "scorer") else None, scorer_args=scorer_args(args),
        command=command,
    )
