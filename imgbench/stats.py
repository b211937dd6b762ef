"""Statistical primitives shared by the estimators: seeded resampling, percentile intervals, Holm, ranks.

The estimators themselves (a mean over a prompt × seed table, paired differences) live in
`imgbench.crossed` and `imgbench.paired` (DESIGN §6). Every random draw takes an explicit seed that is
recorded next to the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def bootstrap_indices(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(samples, n) indices drawn with replacement; the same draw serves every run of a comparison."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, made monotone, capped at 1), in input order.

    Used when one baseline is compared with several methods: it controls the family-wise error
    without assuming the comparisons are independent (they share the baseline).
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def rank_intervals(means: np.ndarray, draws: np.ndarray, higher_is_better: bool,
                   level: float = LEVEL) -> tuple[list[int], list[tuple[int, int]]]:
    """Point ranks of `means` (R,) and rank intervals from paired bootstrap draws (B, R) of them.

    The runs are ranked in every draw (1 = best, ties share the better rank) and the interval is the
    central `level` range of each run's ranks: two runs whose intervals overlap are not clearly
    ordered. The draws must resample the same prompts (and seeds) for every run.
    """
    sign = 1.0 if higher_is_better else -1.0

    def ranks(values: np.ndarray) -> np.ndarray:
        scores = sign * values
        return 1 + (scores[..., None, :] > scores[..., :, None]).sum(axis=-1)

    point = ranks(means)
    drawn = ranks(draws[np.all(np.isfinite(draws), axis=1)])
    alpha = (1 - level) / 2
    low = np.floor(np.quantile(drawn, alpha, axis=0, method="lower")).astype(int)
    high = np.ceil(np.quantile(drawn, 1 - alpha, axis=0, method="higher")).astype(int)
    return point.tolist(), list(zip(low.tolist(), high.tolist(), strict=True))
