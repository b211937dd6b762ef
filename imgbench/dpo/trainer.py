"""The Diffusion-DPO training loop (Wallace et al., CVPR 2024): resumable, bit-reproducible, exported in
diffusers layout.

Per step: the pairs of (seed, step) (data.py), each winner and loser noised with the same noise at the same
timestep, the trained UNet (policy) and a frozen copy of the starting UNet (reference: `requires_grad_(False)`,
eval mode, never given to the optimiser) both denoise them, and loss.py's objective moves the policy. AdamW
(weight decay 1e-2), gradient clipping at 1 and a linear warm-up to a constant rate, as the authors' SD 1.5 run
(their train.py's defaults and launchers/sd15.sh). `accumulate` splits a step's pairs into micro-batches whose
gradients add up to the full batch's (memory, not maths: GroupNorm has no cross-sample statistics).

Every random draw of step k (pairs, caption dropout, noise, timesteps, VAE posterior samples) comes from
generators seeded by (seed, k), so a resumed run takes exactly the steps of an uninterrupted one. The reference
is not checkpointed: it is the starting UNet, reloaded, and the config records the starting weights' digest so
a checkpoint never resumes on other weights.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgbench.dpo.backbones import Backbone, doubled
from imgbench.dpo.data import PairData, to_pixels
from imgbench.dpo.loss import DPOTerms, dpo_terms, implicit_accuracy, per_sample_error, training_target
from imgbench.errors import UserError
from imgbench.worlds.shapes.resumable import ResumableTrainer

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass
class DPOConfig:
    """Everything that changes the trained weights; saved with every checkpoint and in the manifest."""

    model: str
    """Registry name of the starting model (sd15, sdxl, shapes, ...)."""
    model_args: dict[str, Any] = field(default_factory=dict)
    model_path: str = ""
    base_sha256: str = ""
    """`backbones.base_digest` of the starting model (its weights digest or served hub commit, and settings)."""
    pairs: dict[str, Any] = field(default_factory=dict)
    """The pairs source's identity (`imgbench.pairs.source_identity`: a JSONL's sha256)."""
    seed: int = 0
    batch: int = 64
    """Pairs per optimiser step."""
    accumulate: int = 1
    lr: float = 2.048e-5
    warmup: int = 500
    weight_decay: float = 1e-2
    beta: float = 5000.0
    caption_dropout: float = 0.0
    resolution: int = 0
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.batch < 1 or self.accumulate < 1 or self.batch % self.accumulate:
            raise UserError(f"DPO needs beta > 0 and a batch of at least 1 pair that --accumulate divides; got beta "
                            f"{self.beta}, batch {self.batch}, accumulate {self.accumulate}.")


class DPOTrainer(ResumableTrainer):
    """Policy, frozen reference and AdamW over the policy; `run` trains and checkpoints, `export` writes the UNet."""

    def __init__(self, config: DPOConfig, workdir: str | Path, backbone: Backbone, data: PairData) -> None:
        import torch

        super().__init__(config, workdir)
        self.backbone, self.data = backbone, data
        self.policy = backbone.unet.float().train()
        self.reference = copy.deepcopy(self.policy).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self._metrics: dict[str, float] = {}
        self.resume()

    # -- one step -------------------------------------------------------------------------------------------
    def terms(self, prompts: list[str], images: list[tuple[Any, Any]], noise: Any, t: Any,
              eps: Any | None) -> DPOTerms:
        """The objective on one micro-batch of (winner, loser) images; `eps` (2, n, ...) the winners' and losers'
        posterior draws where the latents are sampled."""
        import torch

        with torch.no_grad():
            pixels = to_pixels([w for w, _ in images] + [lo for _, lo in images], self.backbone.resolution)
            x0 = self.backbone.latents(pixels, None if eps is None else eps.flatten(0, 1))
        return pair_terms(self.backbone, self.policy, self.reference, prompts, x0, noise, t, self.config.beta)

    def train_step(self) -> float:
        """Every draw of the step up front (caption dropout, noise, timesteps, posterior samples), then the pairs in
        `accumulate` micro-batches: the step's numbers do not depend on how it is split."""
        import torch

        config, backbone = self.config, self.backbone
        self.set_lr()
        pairs = self.data.batch(config.seed, self.step, config.batch)
        n, generator = len(pairs), torch.Generator().manual_seed(config.seed * 1_000_003 + self.step)
        dropped = (torch.rand(n, generator=generator) < config.caption_dropout).tolist()
        prompts = ["" if drop else pair.prompt for pair, drop in zip(pairs, dropped, strict=True)]
        noise = torch.randn((n, *backbone.latent_shape), generator=generator)
        t = torch.randint(0, backbone.scheduler.config.num_train_timesteps, (n,), generator=generator)
        eps = torch.randn((2, n, *backbone.latent_shape), generator=generator) if backbone.stochastic_latents else None
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = 0.0, []
        size = n // config.accumulate
        for part in (slice(start, start + size) for start in range(0, n, size)):
            terms = self.terms(prompts[part], [pair.images() for pair in pairs[part]], noise[part], t[part],
                               None if eps is None else eps[:, part])
            (terms.loss * size / n).backward()
            loss += float(terms.loss.detach()) * size / n
            logits.append(terms.logits)
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.grad_clip)
        self.optimizer.step()
        self.step += 1
        self._metrics = {"reward_accuracy": float(implicit_accuracy(torch.cat(logits)).mean())}
        return loss

    def step_metrics(self) -> dict[str, float]:
        return self._metrics

    # -- checkpoints and export -----------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict()}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])

    def export(self, out: str | Path, facts: dict[str, Any]) -> Path:
        """The policy UNet as `out/unet/` (diffusers layout, safetensors, fp32: fp16 would round away updates of
        a few 1e-5, which is what DPO makes) and `out/manifest.json`; usable as `--model-arg unet_path=out`."""
        from imgbench.util.io import atomic_write_json

        out = Path(out)
        staging = out / "unet.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        self.policy.save_pretrained(staging, safe_serialization=True)
        if (out / "unet").exists():
            shutil.rmtree(out / "unet")
        os.replace(staging, out / "unet")
        last = self.history[-1] if self.history else {}
        manifest = {"component": "unet (Diffusion-DPO)", "step": self.step,
                    "train_wall_seconds": round(self.wall_seconds, 1), "config": asdict(self.config),
                    "final": {"loss": last.get("loss"), "reward_accuracy": last.get("reward_accuracy"),
                              "over_steps": f"the last log window, ending at step {last.get('step')}"},
                    "history": self.history, **facts}
        atomic_write_json(out / MANIFEST, manifest)
        logger.info("exported the DPO UNet (step %d) to %s", self.step, out)
        return out


def pair_terms(backbone: Backbone, policy: Any, reference: Any, prompts: list[str], x0: Any, noise: Any, t: Any,
               beta: float) -> DPOTerms:
    """The objective for n pairs: x0 holds the n winners then the n losers, and a pair's two images are noised
    with the same `noise` row at the same timestep `t` (Wallace et al.); the reference runs without gradient."""
    import torch

    n = len(prompts)
    with torch.no_grad():
        noise, t = torch.cat([noise, noise]).to(x0.device), torch.cat([t, t]).to(x0.device)
        noisy = backbone.scheduler.add_noise(x0, noise, t)
        target = training_target(backbone.scheduler, x0, noise, t)
        condition = doubled(backbone.condition(prompts))
        ref = per_sample_error(reference(noisy, t, **condition).sample, target)
    errors = per_sample_error(policy(noisy, t, **condition).sample, target)
    return dpo_terms(errors[:n], errors[n:], ref[:n], ref[n:], beta)
