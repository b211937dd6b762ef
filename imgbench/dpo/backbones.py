"""What turns a preference pair into UNet inputs, per model family: latents and conditioning.

SD 1.5: VAE latents (a posterior sample, scaled) and the text encoder's states. SDXL: VAE latents, both text
encoders' penultimate states as cross-attention context, and `added_cond_kwargs` = the second encoder's pooled
projection (`text_embeds`) plus `time_ids` (original size, crop corner, target size) = (R, R, 0, 0, R, R), the
square, uncropped images the authors' train.py trains on and the pipeline samples with. Both reuse the
pipeline's own `encode_prompt`, so training sees exactly the conditioning generation uses. The shapes world: no
VAE, the 32×32 image space-to-depth packed to 16×16×12 (`nets.pack`), and its text encoder's states plus pooled
`class_labels`. The noise schedule and prediction type are the model's own (a DDPM scheduler from the
pipeline's scheduler config; the shapes world's training scheduler, v-prediction).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from imgbench.errors import UserError
from imgbench.pairs import Pair

FAMILIES = ("sd15", "sdxl", "shapes")
DEFAULT_RESOLUTION = {"sd15": 512, "sdxl": 1024}


class Backbone(ABC):
    """A family's frozen parts around the UNet that DPO trains; everything lives on `device`, in fp32."""

    family: str
    unet: Any
    """The starting UNet: the trainer's policy, and (copied) its frozen reference."""
    scheduler: Any
    """The noise schedule the UNet was trained with (add_noise, prediction_type, get_velocity)."""
    resolution: int
    device: str

    stochastic_latents: bool = False
    """Whether x0 is a sample (a VAE posterior's), drawn from the standard normal `eps` that `latents` takes."""

    @property
    @abstractmethod
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one x0, so a step's noise is drawn before any image is encoded."""

    @abstractmethod
    def latents(self, pixels: Any, eps: Any | None) -> Any:
        """x0 for images in [-1, 1] (B, 3, R, R); with `stochastic_latents`, `eps` (B, *latent_shape) is the
        standard normal draw of the posterior sample (drawn by the caller, so it is seeded with the step's rest)."""

    @abstractmethod
    def condition(self, prompts: list[str]) -> dict[str, Any]:
        """The UNet's keyword inputs besides sample and timestep, one row per prompt."""

    def check_training_pairs(self, pairs: Sequence[Pair] | None, seeds: list[int] | None) -> None:  # noqa: B027
        """Refuse pairs this family must not train on (the shapes world's held-out rules); none by default."""


class StableDiffusionBackbone(Backbone):
    """SD 1.5 conditioning: the text encoder's last states (B, 77, 768 for SD 1.5)."""

    family = "sd15"

    def __init__(self, pipe: Any, resolution: int) -> None:
        from diffusers import DDPMScheduler

        self.pipe, self.resolution = pipe, resolution
        self.device = str(pipe._execution_device)
        self.unet = pipe.unet
        for frozen in (pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
            if frozen is not None:
                frozen.requires_grad_(False).eval()
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        if resolution % pipe.vae_scale_factor:
            raise UserError(f"--resolution {resolution} is not a multiple of the VAE's {pipe.vae_scale_factor}.")

    stochastic_latents = True

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.pipe.vae_scale_factor
        return self.pipe.vae.config.latent_channels, side, side

    def latents(self, pixels: Any, eps: Any | None) -> Any:
        """A posterior sample, mean + std · eps (what `latent_dist.sample()` draws, as the authors' code trains on),
        scaled by the VAE's factor."""
        vae = self.pipe.vae
        posterior = vae.encode(pixels.to(self.device)).latent_dist
        return (posterior.mean + posterior.std * eps.to(self.device)) * vae.config.scaling_factor

    def condition(self, prompts: list[str]) -> dict[str, Any]:
        states, _ = self.pipe.encode_prompt(prompts, self.device, 1, False)
        return {"encoder_hidden_states": states}


class SDXLBackbone(StableDiffusionBackbone):
    """SDXL conditioning: both encoders' states, the pooled projection and the size/crop time ids."""

    family = "sdxl"

    def condition(self, prompts: list[str]) -> dict[str, Any]:
        import torch

        states, _, pooled, _ = self.pipe.encode_prompt(prompts, device=self.device, num_images_per_prompt=1,
                                                       do_classifier_free_guidance=False)
        size = self.resolution
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * len(prompts), dtype=states.dtype,
                                device=self.device)
        return {"encoder_hidden_states": states,
                "added_cond_kwargs": {"text_embeds": pooled, "time_ids": time_ids}}


class ShapesBackbone(Backbone):
    """The shapes world: packed pixels, its text encoder's states and pooled caption (`class_labels`)."""

    family = "shapes"

    def __init__(self, model: Any) -> None:
        from imgbench.worlds.shapes import nets
        from imgbench.worlds.shapes.render import CANVAS

        self.device, self.resolution = model.device, CANVAS
        self.tokenizer, text, unet = model.load_networks()
        self.text = text.requires_grad_(False).eval().to(self.device)
        self.unet = unet.to(self.device)
        self.scheduler = nets.build_train_scheduler()

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        from imgbench.worlds.shapes import nets

        side = self.resolution // nets.PACK
        return self.unet.config.in_channels, side, side

    def latents(self, pixels: Any, eps: Any | None) -> Any:
        from imgbench.worlds.shapes import nets

        return nets.pack(pixels.to(self.device))

    def condition(self, prompts: list[str]) -> dict[str, Any]:
        from imgbench.worlds.shapes import nets

        states, pooled = nets.encode(self.text, nets.tokenize(self.tokenizer, prompts).to(self.device))
        return {"encoder_hidden_states": states, "class_labels": pooled}

    def check_training_pairs(self, pairs: Sequence[Pair] | None, seeds: list[int] | None) -> None:
        """DESIGN §8: a shapes part learns from train captions drawn with the parts' seeds, and says which seeds."""
        from imgbench.worlds.shapes.grammar import splits
        from imgbench.worlds.shapes.model import check_vocabulary
        from imgbench.worlds.shapes.seeds import check_part_seeds

        if pairs is None or seeds is None:
            raise UserError("shapes pairs must be an imgbench pairs JSONL whose records name winner_seed and "
                            "loser_seed (what `imgbench pairs` writes): a shapes part records the seeds it saw "
                            "(DESIGN §8).")
        prompts = sorted({pair.prompt for pair in pairs})
        check_vocabulary(prompts)
        train = {caption for rows in splits()["train"].values() for caption, _, _ in rows}
        outside = [p for p in prompts if p not in train]
        if outside:
            raise UserError(f"{len(outside)} pair caption(s) are not shapes train captions (e.g. {outside[0]!r}); "
                            f"a shapes part learns from the train split only (DESIGN §8): make pairs from a "
                            f"`--task shapes-train` run.")
        check_part_seeds(seeds, "these pairs")


def build_backbone(model: str, model_args: dict[str, Any], model_path: str | None, device: str | None,
                   resolution: int | None) -> tuple[Backbone, dict[str, Any]]:
    """The family's backbone for a registry model (fp32: DPO's updates are small, and the reference must be the
    policy's exact starting point), and the model's identity (name, weights digest or served commit)."""
    from imgbench.components import build_model

    spec, built = build_model(model, model_args, device, "fp32", model_path)
    family = spec.family or spec.name
    if family not in FAMILIES:
        raise UserError(f"Diffusion-DPO trains UNet2DConditionModel families {', '.join(FAMILIES)}; model "
                        f"{spec.name!r} is {family!r}.")
    identity = {"name": spec.name, **built.identity()}
    if family == "shapes":
        if resolution not in (None, 32):
            raise UserError(f"the shapes world draws 32x32 images; drop --resolution {resolution}.")
        return ShapesBackbone(built), identity
    cls = SDXLBackbone if family == "sdxl" else StableDiffusionBackbone
    return cls(built.pipeline, resolution or DEFAULT_RESOLUTION[family]), identity


def base_digest(identity: dict[str, Any]) -> str:
    """What a checkpoint and an export record of their starting model: its identity less the device type (the same
    weights on another device are the same reference)."""
    from imgbench.util.hashing import sha256_json

    return sha256_json({key: value for key, value in identity.items() if key != "device_type"})


def doubled(condition: dict[str, Any]) -> dict[str, Any]:
    """Every conditioning tensor twice along the batch: the winner rows, then the loser rows (same prompt)."""
    import torch

    return {key: doubled(value) if isinstance(value, dict) else torch.cat([value, value])
            for key, value in condition.items()}
