"""Statistics over per-item scores. The prompt is the unit of analysis (DESIGN §6).

Seeds of a prompt are averaged first, then prompts are resampled (a cluster bootstrap), because
the four images of one prompt are not independent evidence. Every random draw takes an
explicit seed that is recorded next to the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


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
        def finite(x: float) -> float | None:
            return x if np.isfinite(x) else None

        return {"mean": finite(self.mean), "ci_low": finite(self.low), "ci_high": finite(self.high),
                "n_prompts": self.n_prompts, "n_images": self.n_images, "nonfinite": self.nonfinite}


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


def bootstrap_mean_ci(per_prompt: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling prompts with replacement."""
    if per_prompt.size == 0:
        return float("nan"), float("nan")
    if per_prompt.size == 1:
        return float(per_prompt[0]), float(per_prompt[0])
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, per_prompt.size, size=(samples, per_prompt.size))
    means = per_prompt[draws].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(prompt_ids: Sequence[str], values: Sequence[float], seed: int = BOOTSTRAP_SEED) -> MeanCI:
    ids, means, nonfinite = prompt_means(prompt_ids, values)
    low, high = bootstrap_mean_ci(means, seed=seed)
    mean = float(means.mean()) if means.size else float("nan")
    return MeanCI(mean=mean, low=low, high=high, n_prompts=len(ids), n_images=len(values) - nonfinite,
                  nonfinite=nonfinite)
