"""Coverage of the 95% intervals by simulation: ≥ 2,000 datasets of 50 prompts × 4 seeds each.

About 10 s each on one core (2,000 bootstrap draws per dataset, as in use), so they run by default.
Measured: 0.949 (cluster bootstrap of a run's mean) and 0.929 (paired bootstrap of a skewed shift: the
percentile interval is a little narrow on skewed data, one reason the verdict uses the permutation p).
"""

from __future__ import annotations

import numpy as np

from imgbench.paired import compare_paired, pair_prompts
from imgbench.stats import summarise

DATASETS = 2000
PROMPTS = 50
SEEDS = 4


def _clustered(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Scores in [0, 1] with a skewed prompt effect (Beta) plus seed noise: true mean of prompt means = 2/7."""
    prompt_effect = rng.beta(2, 5, PROMPTS)
    noise = rng.normal(0, 0.1, (PROMPTS, SEEDS))
    values = prompt_effect[:, None] + noise
    return [str(p) for p in range(PROMPTS) for _ in range(SEEDS)], values.ravel()


def test_cluster_bootstrap_interval_covers_the_mean_92_to_97_percent() -> None:
    rng = np.random.default_rng(2024)
    truth = 2 / 7
    hits = 0
    for i in range(DATASETS):
        ids, values = _clustered(rng)
        summary = summarise(ids, values, seed=i)
        hits += summary.low <= truth <= summary.high
    coverage = hits / DATASETS
    print(f"cluster bootstrap coverage: {coverage:.3f}")
    assert 0.92 <= coverage <= 0.97


def test_paired_bootstrap_interval_covers_the_shift_92_to_97_percent() -> None:
    rng = np.random.default_rng(7)
    shift = 0.03
    hits = 0
    for i in range(DATASETS):
        ids, base = _clustered(rng)
        # The other method shares the prompt effect (that is what pairing removes) and adds a skewed per-prompt gain.
        gain = np.repeat(rng.exponential(shift, PROMPTS), SEEDS) + rng.normal(0, 0.05, base.size)
        keys = [(p, s % SEEDS) for s, p in enumerate(ids)]
        paired = pair_prompts({"base": dict(zip(keys, base, strict=True)),
                               "other": dict(zip(keys, base + gain, strict=True))})
        result = compare_paired(paired.values["base"], paired.values["other"], seed=i, permutation_samples=200)
        hits += result.ci_low <= shift <= result.ci_high
    coverage = hits / DATASETS
    print(f"paired bootstrap coverage: {coverage:.3f}")
    assert 0.92 <= coverage <= 0.97
