"""The table printed at the end of a run or a scoring pass, and by `show run`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from imgbench.cli.console import output_console


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


_NUMBERS = ("mean", "ci_low", "ci_high")
_COUNTS = ("n_prompts", "n_seeds", "n_items", "nonfinite")


def metrics_problem(metrics: dict[str, Any] | None) -> str | None:
    """Why `metrics_table` could not print this metrics.json (a damaged or hand-edited file), else None."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("scorers"), dict):
        return "damaged (no scorers mapping)"
    if not isinstance(metrics.get("item_set"), dict) or not isinstance(metrics["item_set"].get("n_items"), int) \
            or not isinstance(metrics.get("interval"), dict):
        return "damaged (no item set or interval)"
    for key, entry in metrics["scorers"].items():
        overall = entry.get("overall") if isinstance(entry, dict) else None
        if not isinstance(overall, dict) or not isinstance(entry.get("higher_is_better"), bool) or \
                not all(overall.get(f) is None or isinstance(overall.get(f), (int, float)) for f in _NUMBERS) or \
                not all(isinstance(overall.get(f), int) for f in _COUNTS):
            return f"damaged (a malformed summary for {key})"
    return None


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """One row per scorer; the caption names the interval and carries each scorer's note (e.g. few seeds)."""
    table = Table(title=title, caption_justify="left")
    for column in ("scorer", "mean", "95% CI", "prompts × seeds", "items", "non-finite"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    notes = []
    for key, entry in metrics["scorers"].items():
        overall = entry["overall"]
        arrow = "↑" if entry["higher_is_better"] else "↓"
        table.add_row(f"{key} {arrow}", _fmt(overall["mean"]),
                      f"[{_fmt(overall['ci_low'])}, {_fmt(overall['ci_high'])}]",
                      f"{overall['n_prompts']} × {overall['n_seeds']}", str(overall["n_items"]),
                      str(overall["nonfinite"]))
        if overall["note"]:
            notes.append(f"note: {key.split('@')[0]}: {overall['note']}")
    table.caption = "\n".join([f"95% CI: {metrics['interval']['method']}, prompts and seeds crossed", *notes])
    return table


def print_outcome(outcome: Any) -> None:
    """Where the run is, what this invocation did, and the metrics if the item set is complete."""
    console = output_console()
    plan = outcome.plan
    console.print(f"run {plan.run_id}: {plan.task.spec.name} / {plan.model_spec.name} / {plan.method_spec.name}")
    console.print(f"folder: {plan.store.root}")
    scored = ", ".join(f"{name} {count}" for name, count in outcome.scored.items())
    console.print(f"generated {outcome.generated} image(s)" + (f"; scored {scored}" if scored else ""))
    if outcome.metrics is not None:
        console.print(metrics_table(outcome.metrics, title=f"{plan.task.spec.name}: {len(plan.items)} items"))
    elif outcome.scored:
        console.print("metrics not written yet: other shards' items are still missing.")
