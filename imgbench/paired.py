"""Paired comparison of two runs on the same (prompt, seed) items (DESIGN §6).

Both runs saw the same prompts and seeds, so the honest question is about the per-prompt
differences Δ = other − baseline (seeds averaged first): their mean with a paired bootstrap
interval, a sign-flip permutation test (exact up to 16 prompts), the Wilcoxon signed-rank test
with zero differences removed explicitly and counted, and win / tie / loss rates per prompt (the
IMG paper reports win rates). Items are paired by key; runs whose keys differ are refused with
the missing items named, and non-finite scores are counted, never silently dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from imgbench.errors import UserError
from imgbench.stats import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    LEVEL,
    bootstrap_indices,
    finite_or_none,
    percentile_interval,
)

ItemKey = tuple[str, int]
PERMUTATION_SAMPLES = 10000
EXACT_PERMUTATION_MAX_PROMPTS = 16


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
class PairedPrompts:
    """Per-prompt means of each run over the same finite items, ready for paired statistics."""

    prompt_ids: list[str]
    values: dict[str, np.ndarray]
    """Run label → per-prompt means, aligned with prompt_ids."""
    n_items: int
    nonfinite: dict[str, int]
    """Run label → items whose score was NaN/inf; such an item is left out of every run's prompt mean."""


def pair_prompts(runs: Mapping[str, Mapping[ItemKey, float]]) -> PairedPrompts:
    """Align runs on identical item sets and average each prompt's seeds.

    An item whose score is non-finite in any run is removed from all runs (it cannot be
    differenced) and counted against the run(s) where it was non-finite.
    """
    check_same_items(runs)
    keys = sorted(next(iter(runs.values())))
    bad = {label: {k for k in keys if not np.isfinite(items[k])} for label, items in runs.items()}
    excluded = set().union(*bad.values())
    kept = [k for k in keys if k not in excluded]
    prompt_ids = list(dict.fromkeys(k[0] for k in kept))
    position = {p: i for i, p in enumerate(prompt_ids)}
    index = np.array([position[k[0]] for k in kept], dtype=int)
    counts = np.bincount(index, minlength=len(prompt_ids))
    values = {}
    for label, items in runs.items():
        sums = np.bincount(index, weights=np.array([items[k] for k in kept], dtype=float), minlength=len(prompt_ids))
        values[label] = sums / np.maximum(counts, 1)
    return PairedPrompts(prompt_ids=prompt_ids, values=values, n_items=len(kept),
                         nonfinite={label: len(b) for label, b in bad.items()})


def sign_flip_pvalue(diffs: np.ndarray, samples: int = PERMUTATION_SAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> tuple[float, str]:
    """Two-sided sign-flip permutation p-value of the mean difference, and how it was computed.

    Under "no effect" each prompt's Δ is as likely to have either sign. Up to 16 prompts every
    sign pattern is enumerated (exact); beyond, `samples` seeded random patterns are drawn and
    p = (1 + #{|mean*| ≥ |mean|}) / (1 + samples), which is never 0 and valid as a p-value.
    """
    n = diffs.size
    if n == 0 or not np.any(diffs):
        return 1.0, "all differences are zero"
    observed = abs(diffs.mean())
    tolerance = 1e-12 * max(1.0, float(np.abs(diffs).max()))
    if n <= EXACT_PERMUTATION_MAX_PROMPTS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ diffs) / n
        return float(np.mean(stats >= observed - tolerance)), f"exact over {signs.shape[0]} sign patterns"
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(samples, n))
    stats = np.abs(signs @ diffs) / n
    hits = int(np.sum(stats >= observed - tolerance))
    return (1 + hits) / (1 + samples), f"{samples} random sign patterns, seed {seed}"


def wilcoxon_test(diffs: np.ndarray) -> dict:
    """Wilcoxon signed-rank on the non-zero differences; zeros are removed first and counted.

    With no non-zero difference there is nothing to rank: the result is "no difference", p = 1.
    """
    from scipy.stats import wilcoxon

    nonzero = diffs[diffs != 0]
    n_zero = int(diffs.size - nonzero.size)
    if nonzero.size == 0:
        return {"p": 1.0, "statistic": None, "n_nonzero": 0, "n_zero": n_zero, "note": "no difference"}
    result = wilcoxon(nonzero)
    return {"p": float(result.pvalue), "statistic": float(result.statistic), "n_nonzero": int(nonzero.size),
            "n_zero": n_zero, "note": "zero differences removed before ranking"}


ALPHA = 0.05


def judge(diffs: np.ndarray, p_value: float, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """A one-word reading of the test: the permutation p-value (Holm-adjusted when there are several), not the
    bootstrap interval, decides, because percentile intervals are too narrow on a handful of prompts."""
    if not np.any(diffs):
        return "no difference"
    if p_value >= alpha:
        return "not distinguishable"
    return "better" if (diffs.mean() > 0) == higher_is_better else "worse"


@dataclass(frozen=True)
class PairedResult:
    """Other vs baseline over the same prompts: Δ = other − baseline, in the scorer's units."""

    n_prompts: int
    n_items: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_permutation: float
    permutation: str
    wilcoxon: dict
    wins: int
    ties: int
    losses: int
    tie_tolerance: float
    higher_is_better: bool
    verdict: str
    bootstrap: dict = field(default_factory=dict)

    @property
    def win_rate(self) -> float:
        return self.wins / self.n_prompts if self.n_prompts else float("nan")

    @property
    def tie_rate(self) -> float:
        return self.ties / self.n_prompts if self.n_prompts else float("nan")

    @property
    def loss_rate(self) -> float:
        return self.losses / self.n_prompts if self.n_prompts else float("nan")

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("mean_diff", "ci_low", "ci_high"):
            data[key] = finite_or_none(data[key])
        data.update(win_rate=finite_or_none(self.win_rate), tie_rate=finite_or_none(self.tie_rate),
                    loss_rate=finite_or_none(self.loss_rate))
        return data


def compare_paired(baseline: np.ndarray, other: np.ndarray, higher_is_better: bool = True, tie_tolerance: float = 0.0,
                   samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL,
                   permutation_samples: int = PERMUTATION_SAMPLES, n_items: int | None = None) -> PairedResult:
    """Paired statistics of per-prompt means (aligned arrays, one entry per prompt); n_items is for the record."""
    baseline, other = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    if baseline.shape != other.shape or baseline.ndim != 1:
        raise ValueError(f"paired arrays must be 1-D and aligned, got {baseline.shape} and {other.shape}")
    if not (np.all(np.isfinite(baseline)) and np.all(np.isfinite(other))):
        raise ValueError("non-finite prompt means: pair items with pair_prompts(), which counts and removes them")
    if tie_tolerance < 0:
        raise UserError(f"the tie tolerance must be ≥ 0, got {tie_tolerance}.")
    diffs = other - baseline
    n = diffs.size
    if n == 0:
        raise UserError("no prompt left to compare (every item was missing or non-finite).")
    mean = float(diffs.mean())
    if n > 1 and np.any(diffs != diffs[0]):
        low, high = percentile_interval(diffs[bootstrap_indices(n, samples, seed)].mean(axis=1), level)
    else:
        low = high = mean
    p_perm, how = sign_flip_pvalue(diffs, permutation_samples, seed)
    better = diffs if higher_is_better else -diffs
    wins, losses = int(np.sum(better > tie_tolerance)), int(np.sum(better < -tie_tolerance))
    verdict = judge(diffs, p_perm, higher_is_better)
    return PairedResult(n_prompts=n, n_items=n if n_items is None else n_items, mean_diff=mean, ci_low=low,
                        ci_high=high, p_permutation=p_perm,
                        permutation=how, wilcoxon=wilcoxon_test(diffs), wins=wins, ties=n - wins - losses,
                        losses=losses, tie_tolerance=tie_tolerance, higher_is_better=higher_is_better,
                        verdict=verdict, bootstrap={"interval": "percentile", "unit": "prompt (paired)",
                                                    "samples": samples, "seed": seed, "level": level})
