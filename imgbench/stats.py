"""Statistics over per-item scores. The prompt is the unit of analysis (DESIGN §6).

Seeds of a prompt are averaged first, then prompts are resampled (a cluster bootstrap), because
the four images of one prompt are not independent evidence. Intervals are percentile bootstrap
intervals (not BCa): simple, and their coverage at the suite sizes we use (≥ 50 prompts) is
checked by simulation in the tests. Every random draw takes an explicit seed that is recorded
next to the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def bootstrap_record(samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict:
    """How an interval was drawn, so a reader can reproduce it exactly."""
    return {"interval": "percentile", "unit": "prompt", "samples": samples, "seed": seed, "level": level}


@dataclass(frozen=True)
class MeanCI:
    """A mean over prompts with a percentile cluster-bootstrap interval."""

    mean: float
    low: float
    high: float
    n_prompts: int
    n_images: int
    nonfinite: int
    """Images whose score was NaN/inf: counted and excluded, never silently dropped."""

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: an undefined mean (no finite score) becomes null rather than NaN."""
        return {"mean": finite_or_none(self.mean), "ci_low": finite_or_none(self.low),
                "ci_high": finite_or_none(self.high), "n_prompts": self.n_prompts, "n_images": self.n_images,
                "nonfinite": self.nonfinite}


def finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def prompt_means(prompt_ids: Sequence[str], values: Sequence[float]) -> tuple[list[str], np.ndarray, int]:
    """Average finite values per prompt (in first-seen order); return ids, means and the non-finite count."""
    sums: dict[str, list[float]] = {}
    nonfinite = 0
    for prompt_id, value in zip(prompt_ids, values, strict=True):
        if not np.isfinite(value):
            nonfinite += 1
            continue
        sums.setdefault(prompt_id, []).append(float(value))
    ids = list(sums)
    return ids, np.array([np.mean(sums[i]) for i in ids], dtype=float), nonfinite


def bootstrap_indices(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(samples, n) prompt indices drawn with replacement; the same draw serves every run of a comparison."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


def bootstrap_mean_ci(per_prompt: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                      level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling prompts with replacement."""
    if per_prompt.size == 0:
        return float("nan"), float("nan")
    if per_prompt.size == 1:
        return float(per_prompt[0]), float(per_prompt[0])
    means = per_prompt[bootstrap_indices(per_prompt.size, samples, seed)].mean(axis=1)
    return percentile_interval(means, level)


def summarise(prompt_ids: Sequence[str], values: Sequence[float], seed: int = BOOTSTRAP_SEED,
              samples: int = BOOTSTRAP_SAMPLES) -> MeanCI:
    ids, means, nonfinite = prompt_means(prompt_ids, values)
    low, high = bootstrap_mean_ci(means, samples=samples, seed=seed)
    mean = float(means.mean()) if means.size else float("nan")
    return MeanCI(mean=mean, low=low, high=high, n_prompts=len(ids), n_images=len(values) - nonfinite,
                  nonfinite=nonfinite)


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


def rank_intervals(matrix: np.ndarray, higher_is_better: bool, samples: int = BOOTSTRAP_SAMPLES,
                   seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> tuple[list[int], list[tuple[int, int]]]:
    """Point ranks and bootstrap rank intervals of the columns of a (prompts × runs) matrix.

    Prompts are resampled jointly for all runs (the comparison is paired), the runs are ranked in
    every draw (1 = best, ties share the better rank), and the interval is the central `level`
    range of each run's ranks: two runs whose intervals overlap are not clearly ordered.
    """
    sign = 1.0 if higher_is_better else -1.0

    def ranks(means: np.ndarray) -> np.ndarray:
        scores = sign * means
        return 1 + (scores[..., None, :] > scores[..., :, None]).sum(axis=-1)

    point = ranks(matrix.mean(axis=0))
    if matrix.shape[0] < 2:
        return point.tolist(), [(int(r), int(r)) for r in point]
    draws = ranks(matrix[bootstrap_indices(matrix.shape[0], samples, seed)].mean(axis=1))
    alpha = (1 - level) / 2
    low = np.floor(np.quantile(draws, alpha, axis=0, method="lower")).astype(int)
    high = np.ceil(np.quantile(draws, 1 - alpha, axis=0, method="higher")).astype(int)
    return point.tolist(), list(zip(low.tolist(), high.tolist(), strict=True))
