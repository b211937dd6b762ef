"""Ablation figures (PNG and SVG, matplotlib): metric vs a method parameter with CI bands,
per-category bars and win / tie / loss bars against a baseline.

Every figure is drawn from a comparison computed by `imgbench.comparison.compare_runs`, so it
shows exactly the numbers `imgbench compare` prints: means over the shared prompts × seeds with
the comparison's 95% intervals (two-way by default). Titles name the task, the scorer and the
interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    _pyplot().close(fig)
    return paths


def _ylabel(comparison: dict[str, Any]) -> str:
    direction = "higher is better" if comparison["higher_is_better"] else "lower is better"
    return f"{comparison['scorer'].split('@')[0]} (mean over prompts × seeds; {direction})"


def _subtitle(comparison: dict[str, Any]) -> str:
    items = comparison["items"]
    return (f"{items['n_prompts']} prompts × {items['n_seeds']} seeds, {items['n_compared']} shared items, 95% "
            f"{comparison['interval']['method']} CI")


def plot_sweep(comparison: dict[str, Any], series: dict[str, list[tuple[Any, str]]], param: str,
               out: Path, baseline: str | None = None) -> list[Path]:
    """Metric vs parameter: one line per series (x value, run label), shaded 95% CI band, baseline as a band."""
    plt = _pyplot()
    runs = comparison["overall"]["runs"]
    xs_all = [x for points in series.values() for x, _ in points]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    categories = sorted({str(x) for x in xs_all}) if not numeric else []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in sorted(series.items()):
        points = sorted(points, key=lambda p: p[0] if numeric else str(p[0]))
        x = np.array([p[0] if numeric else categories.index(str(p[0])) for p in points], dtype=float)
        mean = np.array([runs[label]["mean"] for _, label in points])
        low = np.array([runs[label]["ci_low"] for _, label in points])
        high = np.array([runs[label]["ci_high"] for _, label in points])
        line, = ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, low, high, alpha=0.2, color=line.get_color())
    if baseline is not None:
        base = runs[baseline]
        ax.axhline(base["mean"], color="grey", linestyle="--", label=f"baseline {baseline}")
        ax.axhspan(base["ci_low"], base["ci_high"], color="grey", alpha=0.12)
    if categories:
        ax.set_xticks(range(len(categories)), [c if c else "''" for c in categories])
    ax.set_xlabel(param)
    ax.set_ylabel(_ylabel(comparison))
    ax.set_title(f"{comparison['task']} · {comparison['scorer']}: {param} sweep\n{_subtitle(comparison)}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, f"sweep-{param}")


def plot_tags(comparison: dict[str, Any], labels: Sequence[str], out: Path) -> list[Path]:
    """Per-category bars: the mean of each run within each tag, with 95% CI error bars."""
    plt = _pyplot()
    tags = list(comparison["by_tag"])
    if not tags:
        return []
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(tags) * max(1, len(labels) / 3)), 4.2))
    for i, label in enumerate(labels):
        stats = [comparison["by_tag"][t]["runs"][label] for t in tags]
        mean = np.array([s["mean"] for s in stats])
        err = np.array([[m - s["ci_low"] for m, s in zip(mean, stats, strict=True)],
                        [s["ci_high"] - m for m, s in zip(mean, stats, strict=True)]])
        ax.bar(np.arange(len(tags)) + (i - (len(labels) - 1) / 2) * width, mean, width, yerr=err, capsize=3,
               label=label)
    ax.set_xticks(range(len(tags)), [f"{t}\n({comparison['by_tag'][t]['runs'][labels[0]]['n_prompts']} prompts)"
                                     for t in tags])
    ax.set_xlabel("prompt category (tag)")
    ax.set_ylabel(_ylabel(comparison))
    ax.set_title(f"{comparison['task']} · {comparison['scorer']}: by category\n{_subtitle(comparison)}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out, "by-tag")


def _prompts(entry: dict[str, Any]) -> int:
    return int(entry["wins"]) + int(entry["ties"]) + int(entry["losses"])


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (prompts as the units; well-behaved at 0 and 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def plot_win_rates(comparison: dict[str, Any], out: Path) -> list[Path]:
    """Win / tie / loss share of prompts for each run against the baseline (stacked horizontal bars)."""
    plt = _pyplot()
    entries = comparison["overall"]["comparisons"]
    labels = list(entries)
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.5 * len(labels)))
    left = np.zeros(len(labels))
    for part, name, colour in (("win", "wins", "#4c9a2a"), ("tie", "ties", "#bbbbbb"), ("loss", "losses", "#c0392b")):
        share = np.array([entries[label][f"{part}_rate"] * 100 for label in labels])
        ax.barh(labels, share, left=left, color=colour, label=name)
        if part == "win":  # the title promises an interval: draw it on the share of wins
            low, high = zip(*(wilson_interval(entries[label]["wins"], _prompts(entries[label]))
                              for label in labels), strict=True)
            ax.errorbar(share, labels, xerr=[share - 100 * np.array(low), 100 * np.array(high) - share],
                        fmt="none", ecolor="black", capsize=3, linewidth=1)
        left += share
    ax.axvline(50, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of prompts vs baseline {comparison['baseline']} "
                  f"(tie: |Δ| ≤ {entries[labels[0]]['tie_tolerance']:g})")
    ax.set_ylabel("run")
    items = comparison["items"]
    ax.set_title(f"{comparison['task']} · {comparison['scorer']}: win rate vs baseline\n{items['n_prompts']} prompts "
                 f"(seeds averaged), 95% Wilson interval on the share of wins", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out, "win-rate")
