"""How well two scorers agree on the same images (meta-evaluation).

Spearman and Kendall (tau-b) rank correlations over images, with cluster-bootstrap intervals
that resample prompts (the images of one prompt are not independent), and pairwise accuracy on
same-prompt image pairs: for every two images of one prompt, does the second scorer order them
as the first (the reference, e.g. the shapes world's exact checker) does? Tie policy: pairs the
reference ties carry no preference and are left out (counted); pairs only the second scorer ties
count one half (it expressed no preference), as in tie-calibrated pairwise accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imgbench.errors import UserError
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, LEVEL, bootstrap_indices, percentile_interval


@dataclass(frozen=True)
class Agreement:
    n_images: int
    n_prompts: int
    spearman: tuple[float, float, float]
    """(value, ci_low, ci_high)"""
    kendall: tuple[float, float, float]
    pairwise_accuracy: tuple[float, float, float]
    n_pairs: int
    reference_ties: int
    bootstrap: dict

    def to_dict(self) -> dict:
        def triple(t: tuple[float, float, float]) -> dict:
            return {"value": _json(t[0]), "ci_low": _json(t[1]), "ci_high": _json(t[2])}

        return {"n_images": self.n_images, "n_prompts": self.n_prompts, "spearman": triple(self.spearman),
                "kendall": triple(self.kendall), "pairwise_accuracy": triple(self.pairwise_accuracy),
                "n_pairs": self.n_pairs, "reference_ties": self.reference_ties, "bootstrap": self.bootstrap}


def _json(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _pair_table(groups: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per prompt: credit (1 agree, ½ b-tie, 0 disagree) summed, and counted pairs; plus reference ties."""
    credit, counted, ties = np.zeros(len(groups)), np.zeros(len(groups)), 0
    for g, members in enumerate(groups):
        if members.size < 2:
            continue
        i, j = np.triu_indices(members.size, k=1)
        da = np.sign(a[members[i]] - a[members[j]])
        db = np.sign(b[members[i]] - b[members[j]])
        keep = da != 0
        ties += int(np.sum(~keep))
        credit[g] = np.sum(np.where(db[keep] == 0, 0.5, (da[keep] == db[keep]).astype(float)))
        counted[g] = np.sum(keep)
    return credit, counted, ties


def agreement(prompt_ids: Sequence[str], reference: Sequence[float], other: Sequence[float],
              samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> Agreement:
    """Agreement of `other` with `reference` over images given as parallel sequences (finite values only)."""
    from scipy.stats import kendalltau, spearmanr

    a, b = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    if a.size < 3:
        raise UserError(f"agreement needs at least 3 images scored by both scorers, got {a.size}.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("non-finite scores must be counted and removed before agreement()")
    ids = list(dict.fromkeys(prompt_ids))
    position = {p: i for i, p in enumerate(ids)}
    owner = np.array([position[p] for p in prompt_ids])
    groups = [np.flatnonzero(owner == g) for g in range(len(ids))]

    def correlations(index: np.ndarray) -> tuple[float, float]:
        x, y = a[index], b[index]
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return float("nan"), float("nan")
        return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic)

    credit, counted, ties = _pair_table(groups, a, b)
    spearman, kendall = correlations(np.arange(a.size))
    accuracy = credit.sum() / counted.sum() if counted.sum() else float("nan")
    draws = bootstrap_indices(len(ids), samples, seed)
    boot = np.array([correlations(np.concatenate([groups[g] for g in row])) for row in draws])
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_acc = credit[draws].sum(axis=1) / counted[draws].sum(axis=1)

    def interval(point: float, values: np.ndarray) -> tuple[float, float, float]:
        values = values[np.isfinite(values)]
        if not np.isfinite(point) or values.size == 0:
            return point, float("nan"), float("nan")
        return (point, *percentile_interval(values, level))

    return Agreement(n_images=int(a.size), n_prompts=len(ids), spearman=interval(spearman, boot[:, 0]),
                     kendall=interval(kendall, boot[:, 1]), pairwise_accuracy=interval(accuracy, boot_acc),
                     n_pairs=int(counted.sum()), reference_ties=ties,
                     bootstrap={"interval": "percentile", "unit": "prompt", "samples": samples, "seed": seed,
                                "level": level})
