"""The Iteratively Updated Preference Objective (IMG paper §3.4, supplementary B; img_paper.md §1.5).

All terms live in IP-token space; the diffusion model is never run. With f = f_θ(c) the aligner's
output, f_ref = f_ref(c) the reference aligner's output (no gradient), c_w / c_l the winner's and
loser's IP tokens and ‖·‖² a squared distance over a sample's tokens:

    L_base = ‖c_w − f‖²                                                  (Eq. 4 / 8)
    Δ_x    = ‖x − f‖² − ‖x − f_ref‖²
    L_pref = log(1 + exp(2Δ_w − Δ_l − ‖f_ref − f‖²))   DPO + SPIN        (Eq. 6 / 17, the paper)
           = log(1 + exp(Δ_w − Δ_l))                    DPO only          (Table 5c ablation)
           = log(1 + exp(Δ_w − ‖f_ref − f‖²))           SPIN only
           = 0                                          neither (λ·L_pref vanishes; Table 5b λ=0)
    L      = L_base + λ·L_pref,  λ = 1                                   (Eq. 7 / 19)

η = µ = 1 and the Gaussian's 1/(2σ²) is dropped, as in the paper. Choices the paper leaves open
are explicit, recorded parameters: the reduction of ‖·‖² over token dimensions ('sum' is the
paper's literal squared L2 norm, which saturates the logistic term with 16 × 2048 tokens; 'mean'
is an MSE) and how the reference-update test of Eq. 18 judges a batch ('batch-mean' compares
the batch means, 'per-sample' needs every sample to pass). Batch expectations are means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PREFERENCE_TERMS = ("dpo+spin", "dpo", "spin", "none")
REDUCTIONS = ("mean", "sum")
JUDGEMENTS = ("batch-mean", "per-sample")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Every knob of the objective; the whole dataclass is recorded with a trained aligner."""

    preference: str = "dpo+spin"
    """Which L_pref: 'dpo+spin' (the paper), 'dpo', 'spin' or 'none'."""
    lam: float = 1.0
    """λ weighting L_pref (paper: 1; ablated 0, 0.5, 1, 2)."""
    reduction: str = "mean"
    """How ‖·‖² reduces over a sample's token dimensions: 'mean' (MSE) or 'sum' (literal squared L2)."""
    k: int = 10
    """Consecutive qualifying steps before f_ref ← f (Eq. 18, paper: 10)."""
    judgement: str = "batch-mean"
    """How a step qualifies: 'batch-mean' (mean distances) or 'per-sample' (every sample)."""

    def __post_init__(self) -> None:
        for value, allowed, name in ((self.preference, PREFERENCE_TERMS, "preference"),
                                     (self.reduction, REDUCTIONS, "reduction"),
                                     (self.judgement, JUDGEMENTS, "judgement")):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def squared_distance(a: torch.Tensor, b: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-sample ‖a − b‖² over all non-batch dimensions, summed or averaged."""
    diff = (a - b).float().pow(2).flatten(1)
    return diff.sum(1) if reduction == "sum" else diff.mean(1)


def iupo_loss(f: torch.Tensor, f_ref: torch.Tensor, winner: torch.Tensor, loser: torch.Tensor,
              config: ObjectiveConfig) -> dict[str, torch.Tensor]:
    """L and its terms for one batch. `f_ref` must carry no gradient (gradients flow only into f_θ).

    Returns scalars 'loss', 'base', 'pref' and per-sample 'dist_theta' = ‖c_w − f‖² and
    'dist_ref' = ‖c_w − f_ref‖² (detached), which the reference-update test of Eq. 18 reads.
    """
    f_ref = f_ref.detach()
    r = config.reduction
    dist_theta = squared_distance(winner, f, r)
    dist_ref = squared_distance(winner, f_ref, r)
    base = dist_theta.mean()
    delta_w = dist_theta - dist_ref
    delta_l = squared_distance(loser, f, r) - squared_distance(loser, f_ref, r)
    spin = squared_distance(f_ref, f, r)
    if config.preference == "dpo+spin":
        logits = 2 * delta_w - delta_l - spin
    elif config.preference == "dpo":
        logits = delta_w - delta_l
    elif config.preference == "spin":
        logits = delta_w - spin
    else:
        logits = None
    # log(1 + exp(a)) computed stably as softplus(a) = −log σ(−a), the logistic loss ℓ of Eq. 15.
    pref = F.softplus(logits).mean() if logits is not None else base.new_zeros(())
    return {"loss": base + config.lam * pref, "base": base, "pref": pref,
            "dist_theta": dist_theta.detach(), "dist_ref": dist_ref.detach()}


class ReferenceSchedule:
    """Eq. 18: replace f_ref by a copy of f_θ after k consecutive steps in which f_θ is closer to
    the winner than f_ref. A step that does not qualify resets the streak; an update resets it too.
    """

    def __init__(self, k: int = 10, judgement: str = "batch-mean") -> None:
        self.k, self.judgement = k, judgement
        self.streak = 0
        self.updates = 0

    def qualifies(self, dist_theta: torch.Tensor, dist_ref: torch.Tensor) -> bool:
        if self.judgement == "per-sample":
            return bool((dist_theta < dist_ref).all())
        return bool(dist_theta.mean() < dist_ref.mean())

    def observe(self, dist_theta: torch.Tensor, dist_ref: torch.Tensor) -> bool:
        """Record one step; True when the reference must be replaced now."""
        self.streak = self.streak + 1 if self.qualifies(dist_theta, dist_ref) else 0
        if self.streak >= self.k:
            self.streak = 0
            self.updates += 1
            return True
        return False

    def state_dict(self) -> dict[str, int]:
        return {"streak": self.streak, "updates": self.updates}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.streak, self.updates = int(state["streak"]), int(state["updates"])


@torch.no_grad()
def copy_into_reference(model: nn.Module, reference: nn.Module) -> None:
    """f_ref ← f_θ (a copy of the current weights; the reference stays frozen between updates)."""
    reference.load_state_dict(model.state_dict())
