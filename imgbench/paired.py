"""Paired comparison of two runs on the same (prompt, seed) items (DESIGN §6).

Both runs saw the same prompts and seeds, so the question is about the table of differences
D[p, s] = other − baseline. Seeds are a crossed factor there too: a method can help on one seed's
noise tensor (one layout) and hurt on another, for every prompt at once, so D gets the same interval
as a run's mean (`imgbench.crossed`, two-way by default) and the test is that estimator's test of
"mean Δ = 0" (two-way: t = mean / se with the Satterthwaite df). Beside them: Δ per seed (a reader
must see when one seed carries the effect), how many seeds favour each side, and win / tie / loss
per prompt with seeds averaged (the IMG paper reports win rates). Items are paired by key; runs
whose keys differ are refused with the missing items named, and non-finite scores are counted,
never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from imgbench.crossed import (
    PRODUCT_BOOTSTRAP,
    PROMPT_BOOTSTRAP,
    TWO_WAY,
    CrossedMean,
    ItemKey,
    ItemTable,
    check_estimator,
    estimate_with_test,
)
from imgbench.errors import UserError
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, LEVEL, finite_or_none, holm

ALPHA = 0.05
TESTS = {TWO_WAY: "t = mean Δ / se with the interval's df (two-sided)",
         PRODUCT_BOOTSTRAP: "two-sided percentile product bootstrap",
         PROMPT_BOOTSTRAP: "two-sided percentile prompt bootstrap (conditional on the seeds)"}


def describe_items(keys: Sequence[ItemKey], limit: int = 6) -> str:
    """'prompt 3 seed 0, prompt 3 seed 1, … (12 in all)' — enough to find them, short enough to read."""
    keys = sorted(keys, key=lambda k: (k[0], k[1]))
    shown = ", ".join(f"prompt {p} seed {s}" for p, s in keys[:limit])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > limit else "")


def check_same_items(runs: Mapping[str, Mapping[ItemKey, float]]) -> None:
    """Refuse to pair runs whose (prompt, seed) sets differ, naming what each one lacks."""
    union = set().union(*(set(items) for items in runs.values()))
    problems = [f"{label} lacks {describe_items(sorted(union - set(items)))}"
                for label, items in runs.items() if set(items) != union]
    if problems:
        raise UserError("cannot pair runs with different (prompt, seed) items: " + "; ".join(problems)
                        + ". Generate and score the missing items (`imgbench run` with the same --seeds), or "
                          "compare over the shared items only (--shared).")


@dataclass(frozen=True)
class PairedTables:
    """Each run's prompt × seed table over the same items; an item non-finite in any run is NaN in all."""

    tables: dict[str, ItemTable]
    """Run label → table; its `bad` cells are the items that were non-finite in that run."""
    n_items: int

    @property
    def nonfinite(self) -> dict[str, int]:
        return {label: table.nonfinite for label, table in self.tables.items()}

    def rows(self, prompt_ids: Iterable[str]) -> dict[str, ItemTable]:
        chosen = list(prompt_ids)
        return {label: table.rows(chosen) for label, table in self.tables.items()}


def pair_tables(runs: Mapping[str, Mapping[ItemKey, float]]) -> PairedTables:
    """Align runs on identical item sets; an item that cannot be differenced is left out of every run."""
    check_same_items(runs)
    tables = {label: ItemTable.from_items(items) for label, items in runs.items()}
    excluded = np.logical_or.reduce([~np.isfinite(t.values) for t in tables.values()])
    tables = {label: replace(t, values=np.where(excluded, np.nan, t.values)) for label, t in tables.items()}
    return PairedTables(tables=tables, n_items=int((~excluded).sum()))


def judge(all_zero: bool, mean_diff: float, p_value: float, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """A one-word reading of the (Holm-adjusted) test at `alpha`."""
    if all_zero:
        return "no difference"
    if p_value >= alpha:
        return "not distinguishable"
    return "better" if (mean_diff > 0) == higher_is_better else "worse"


def format_signed(values: Iterable[float]) -> str:
    """'+0.088 +0.096 -0.063': two significant digits on the largest, one shared number of decimals."""
    values = [np.nan if v is None else float(v) for v in values]
    largest = max((abs(v) for v in values if np.isfinite(v) and v), default=1.0)
    decimals = int(min(4, max(0, 1 - np.floor(np.log10(largest)))))
    return " ".join("n/a" if not np.isfinite(v) else f"{v:+.{decimals}f}" for v in values)


def format_p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


@dataclass(frozen=True)
class PairedResult:
    """Other vs baseline over the same items: Δ = other − baseline, in the scorer's units."""

    difference: CrossedMean
    """Mean Δ with its interval; `per_seed` holds Δ per seed."""
    p: float
    p_holm: float
    test: str
    seeds_better: int
    seeds_tied: int
    seeds_worse: int
    wins: int
    ties: int
    losses: int
    tie_tolerance: float
    higher_is_better: bool
    all_zero: bool
    verdict: str

    @property
    def n_prompts(self) -> int:
        return self.difference.n_prompts

    def rate(self, count: int) -> float:
        return count / self.n_prompts if self.n_prompts else float("nan")

    def to_dict(self) -> dict:
        d = self.difference.to_dict()
        d["mean_diff"], d["per_seed_diff"] = d.pop("mean"), d.pop("per_seed")
        return {**d, "p": self.p,
                "p_holm": self.p_holm, "test": self.test, "seeds_better": self.seeds_better,
                "seeds_tied": self.seeds_tied, "seeds_worse": self.seeds_worse, "wins": self.wins, "ties": self.ties,
                "losses": self.losses, "win_rate": finite_or_none(self.rate(self.wins)),
                "tie_rate": finite_or_none(self.rate(self.ties)), "loss_rate": finite_or_none(self.rate(self.losses)),
                "tie_tolerance": self.tie_tolerance, "higher_is_better": self.higher_is_better,
                "verdict": self.verdict}


def _count_sides(diffs: np.ndarray, higher_is_better: bool, tolerance: float) -> tuple[int, int, int]:
    """(better, tied, worse) counts of Δ values for the other run, a tie being |Δ| ≤ tolerance."""
    better = diffs if higher_is_better else -diffs
    wins, losses = int(np.sum(better > tolerance)), int(np.sum(better < -tolerance))
    return wins, diffs.size - wins - losses, losses


def compare_paired(baseline: ItemTable, other: ItemTable, higher_is_better: bool = True, tie_tolerance: float = 0.0,
                   method: str = TWO_WAY, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                   level: float = LEVEL) -> PairedResult:
    """Paired statistics of two tables over the same items (from `pair_tables`)."""
    check_estimator(method)
    if baseline.prompt_ids != other.prompt_ids or baseline.seeds != other.seeds:
        raise ValueError("paired tables must share prompts and seeds: build them with pair_tables()")
    if tie_tolerance < 0:
        raise UserError(f"the tie tolerance must be ≥ 0, got {tie_tolerance}.")
    diff_table = ItemTable(baseline.prompt_ids, baseline.seeds, other.values - baseline.values,
                           baseline.bad | other.bad)
    if diff_table.n_items == 0:
        raise UserError("no item left to compare (every item was missing or non-finite).")
    difference, p = estimate_with_test(diff_table, method, level, samples, seed)
    diffs = diff_table.values[np.isfinite(diff_table.values)]
    prompt_diffs = np.nanmean(diff_table.compact().values, axis=1)
    seeds = _count_sides(np.array(list(difference.per_seed.values())), higher_is_better, tie_tolerance)
    prompts = _count_sides(prompt_diffs, higher_is_better, tie_tolerance)
    all_zero = not np.any(diffs)
    return PairedResult(difference=difference, p=p, p_holm=p, test=TESTS[method], seeds_better=seeds[0],
                        seeds_tied=seeds[1], seeds_worse=seeds[2], wins=prompts[0], ties=prompts[1],
                        losses=prompts[2], tie_tolerance=tie_tolerance, higher_is_better=higher_is_better,
                        all_zero=all_zero, verdict=judge(all_zero, difference.mean, p, higher_is_better))


def holm_adjust(results: Sequence[PairedResult]) -> list[PairedResult]:
    """Holm across comparisons that share a baseline; the verdicts then read the adjusted p."""
    adjusted = holm([r.p for r in results]) if results else []
    return [replace(r, p_holm=p, verdict=judge(r.all_zero, r.difference.mean, p, r.higher_is_better))
            for r, p in zip(results, adjusted, strict=True)]
