"""The Diffusion-DPO objective (Wallace et al., CVPR 2024; arXiv 2311.12908), as the authors' train.py computes it.

The likelihood ratio of a diffusion model is replaced by its denoising error: for a pair (winner w, loser l)
noised with the same noise at the same timestep, e(x) is the per-sample mean squared error of a UNet's output
against the scheduler's own training target, and

    loss = −log σ(−β/2 · [(e_θ(w) − e_ref(w)) − (e_θ(l) − e_ref(l))])

with θ the trained UNet and ref the frozen starting UNet. The 1/2 is the authors' (SalesforceAIResearch/
DiffusionDPO train.py and diffusers' train_diffusion_dpo_sdxl.py); diffusers' SD 1.5 LoRA example drops it and
halves β's default instead (2,500 for 5,000), the same objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgbench.errors import UserError

PREDICTION_TYPES = ("epsilon", "v_prediction")


def training_target(scheduler: Any, x0: Any, noise: Any, timesteps: Any) -> Any:
    """What the UNet was trained to predict: ε for `epsilon` (SD 1.5, SDXL), v for `v_prediction` (the shapes
    UNet), so DPO's errors are the pretraining loss's own terms."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    raise UserError(f"the scheduler predicts {kind!r}; Diffusion-DPO here supports {', '.join(PREDICTION_TYPES)}.")


def per_sample_error(prediction: Any, target: Any) -> Any:
    """Mean squared error over every dimension but the batch, in fp32: e(x) of the objective."""
    squared = (prediction.float() - target.float()) ** 2
    return squared.mean(dim=tuple(range(1, squared.ndim)))


@dataclass(frozen=True)
class DPOTerms:
    loss: Any
    """Scalar tensor: the objective's mean over the pairs (differentiable through the policy's errors)."""
    logits: Any
    """Per pair, −β/2 · [(e_θ(w) − e_ref(w)) − (e_θ(l) − e_ref(l))]; above 0 when the policy moved the winner's error
    down more than the loser's, relative to the reference (detached)."""

    def reward_accuracy(self) -> float:
        """Share of pairs with a positive implicit reward margin; a tie counts one half, as in diffusers' example, so
        the starting point (policy = reference, every margin 0) reads 0.5, chance."""
        return float(implicit_accuracy(self.logits).mean())


def implicit_accuracy(logits: Any) -> Any:
    """1 per pair whose margin is positive, 0.5 for a tie, 0 otherwise."""
    return (logits > 0).float() + 0.5 * (logits == 0).float()


def dpo_terms(policy_w: Any, policy_l: Any, ref_w: Any, ref_l: Any, beta: float) -> DPOTerms:
    """The objective from the four per-pair errors; the reference errors carry no gradient."""
    import torch.nn.functional as F

    logits = -0.5 * beta * ((policy_w - ref_w.detach()) - (policy_l - ref_l.detach()))
    return DPOTerms(loss=-F.logsigmoid(logits).mean(), logits=logits.detach())
