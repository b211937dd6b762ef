"""`imgbench plot`: ablation figures (metric vs a parameter, per-category bars, win rates) as PNG and SVG."""

from __future__ import annotations

import argparse

from imgbench.cli.common import add_interval_options

EXAMPLES = """examples:
  imgbench plot --task tiny --method dummy --param salt --baseline dummy/base --out plots
  imgbench plot --task drawbench --method img --param ip_scale --model sdxl --baseline sdxl/base --scorer clipscore
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="ablation plots of a method parameter sweep", epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="task the runs were made on")
    parser.add_argument("--method", required=True, help="the method whose parameter was swept")
    parser.add_argument("--param", required=True, help="the swept parameter (the x axis)")
    parser.add_argument("--model", action="append", help="only these models (repeatable or a,b; default: all)")
    parser.add_argument("--baseline", metavar="RUN", help="reference run (id or model/method[@variant]) for the "
                        "baseline band and the win-rate figure")
    parser.add_argument("--scorer", help="scorer (default: the task's primary scorer)")
    parser.add_argument("--output", default="results", help="results folder holding runs/ (results)")
    parser.add_argument("--out", default="plots", help="folder for the figures (plots)")
    add_interval_options(parser)
    parser.set_defaults(handler=main)


def drop_lone_series(series: dict[str, list]) -> tuple[dict[str, list], list[str]]:
    """Drop series that vary another parameter and hold a single point of the swept one.

    Such a run sits at the swept parameter's default: it belongs to the other parameter's plot, and
    here it would only crowd the legend. The plain method series is always kept.
    """
    lone = [name for name, points in series.items() if len(points) < 2 and "@" in name]
    return {k: v for k, v in series.items() if k not in lone}, lone


def main(args: argparse.Namespace) -> int:
    from imgbench import catalog, plots
    from imgbench.cli.common import output_folder
    from imgbench.cli.console import output_console
    from imgbench.comparison import compare_runs, unique_labels
    from imgbench.errors import UserError
    from imgbench.selection import default_params, format_variant, load_comparable, scan_runs, select_run

    runs = scan_runs(args.output, args.task)
    models = [m.strip() for value in args.model or [] for m in value.split(",") if m.strip()]
    sweep = [r for r in runs if r.method == args.method and (not models or r.model in models)]
    if not sweep:
        raise UserError(f"no runs of method {args.method!r} on task {args.task!r}"
                        f"{' for ' + ', '.join(models) if models else ''}; make them with `imgbench sweep --method "
                        f"{args.method} --param {args.param}=V1,V2 --task {args.task}`.")
    baseline = select_run(runs, args.baseline) if args.baseline else None
    sweep = [r for r in sweep if r != baseline]
    primary = catalog.tasks().get(args.task).spec.primary_scorer if args.task in catalog.tasks() else None
    scores = load_comparable([*([baseline] if baseline else []), *sweep], args.scorer, primary)
    labels = unique_labels(scores)
    comparison = compare_runs(scores[0], scores[1:], shared=True, interval=args.interval, seed=args.seed)
    series: dict[str, list] = {}
    for label, s in zip(labels, scores, strict=True):
        run = s.run
        if run == baseline:
            continue
        value = run.variant.get(args.param, default_params(run.method, run.model).get(args.param))
        if value is None and args.param not in run.manifest["identity"]["method"].get("params", {}):
            raise UserError(f"run {label} has no method parameter {args.param!r}; the method's parameters are "
                            f"{', '.join(run.manifest['identity']['method'].get('params', {})) or '(none)'}.")
        rest = format_variant({k: v for k, v in run.variant.items() if k != args.param})
        series.setdefault(f"{run.model}/{run.method}" + (f"@{rest}" if rest else ""), []).append((value, label))
    series, lone = drop_lone_series(series)
    if lone:
        output_console().print(f"left out of the {args.param} line plot (one point each, they vary other "
                               f"parameters): {', '.join(lone)}")
    if not any(len(points) > 1 for points in series.values()):
        output_console().print(f"[yellow]warning[/]: the {args.param} sweep has one point per line, so the figure "
                               f"shows points, not a trend; add values with `imgbench sweep --param "
                               f"{args.param}=v1,v2,...`", highlight=False)
    out = output_folder(args.out, "the plot folder")
    paths = plots.plot_sweep(comparison, series, args.param, out, baseline=labels[0] if baseline else None)
    paths += plots.plot_tags(comparison, labels, out)
    if baseline:
        paths += plots.plot_win_rates(comparison, out)
    shared = comparison["items"]["n_compared"]
    output_console().print(f"{args.task} · {comparison['scorer']} · {shared} shared items; wrote "
                           + ", ".join(str(p) for p in paths))
    return 0
