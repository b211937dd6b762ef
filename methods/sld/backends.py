"""What SLD's latent operations need from a text-to-image model, per pipeline (latent_ops.py works on either).

A backend knows how to embed a prompt (with its negative / unconditional branch), evaluate the denoiser with
classifier-free guidance, move between images and its latent space, draw seeded noise, which DDIM config its
sampler uses, and the prompt templates (inversion, an object alone, an attribute change). LatentEditor owns the
DDIM loops, the composition and the cost count, so they are written once.

- `SD15Backend(pipe)`: an SD 1.5-class `StableDiffusionPipeline`: VAE latents, CFG pair in one UNet call,
  "A realistic photo of a scene" / "a realistic photo of a {name}" (the original's prompts).
- `ShapesBackend(model)`: the shapes world's model: no VAE, the latent is the 32×32 image in [-1, 1]
  space-to-depth packed to 16×16×12 (`nets.pack`), so one latent cell is 2×2 pixels; the caption's token states
  plus pooled `class_labels`; the empty caption is the unconditional branch (the model was trained with caption
  dropout) and the inversion prompt (every prompt must be in the world's vocabulary); objects alone are
  "a {name}" ("a red circle"). Its sampler is DDIM with trailing spacing and v-prediction (its scheduler/).
"""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    """One pipeline's pieces for latent_ops.LatentEditor (see the module docstring)."""

    inversion_prompt: str
    object_prompt: str
    attribute_prompt: str
    scheduler_config: dict[str, Any]
    device: Any
    dtype: Any
    blank: Any
    """The empty canvas (a PIL image) where the world has one (shapes: black), else None: what a delete restores."""

    def embed(self, prompt: str, negative: str | None = None) -> Any: ...

    def predict(self, x: Any, t: Any, embeddings: Any, guidance: float) -> Any:
        """The guided model output (ε or v, as the scheduler config says) for a batch of one."""

    def encode(self, image: Any) -> Any: ...

    def decode(self, latents: Any) -> Any: ...


class SD15Backend:
    """An SD 1.5-class diffusers pipeline, as SLD's original code drives it."""

    inversion_prompt = "A realistic photo of a scene"
    object_prompt = "a realistic photo of a {name}"
    attribute_prompt = "a {name}"
    blank = None

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.scheduler_config = {k: v for k, v in pipe.scheduler.config.items() if k != "skip_prk_steps"}

    @property
    def device(self) -> Any:
        return self.pipe.unet.device

    @property
    def dtype(self) -> Any:
        return self.pipe.unet.dtype

    def embed(self, prompt: str, negative: str | None = None) -> Any:
        import torch

        cond, uncond = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt=negative)
        return torch.cat([uncond, cond])

    def predict(self, x: Any, t: Any, embeddings: Any, guidance: float) -> Any:
        uncond, cond = self.pipe.unet(x.repeat(2, 1, 1, 1), t, encoder_hidden_states=embeddings).sample.chunk(2)
        return uncond + guidance * (cond - uncond)

    def encode(self, image: Any) -> Any:
        vae = self.pipe.vae
        pixels = self.pipe.image_processor.preprocess(image).to(self.device, vae.dtype)
        return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor

    def decode(self, latents: Any) -> Any:
        vae = self.pipe.vae
        pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")[0]


class ShapesBackend:
    """The shapes world's `ShapesModel` on its packed 16×16×12 tensor (see the module docstring)."""

    inversion_prompt = ""
    object_prompt = "a {name}"
    attribute_prompt = "a {name}"

    def __init__(self, model: Any) -> None:
        import torch
        from PIL import Image

        from imgbench.worlds.shapes import nets
        from imgbench.worlds.shapes.render import CANVAS

        self.model = model
        self.scheduler_config = dict(nets.load_sampler(model.folder).config)
        self.dtype = torch.float32  # the world's model runs in fp32 only
        self.blank = Image.new("RGB", (CANVAS, CANVAS))  # the renderer's black background

    @property
    def device(self) -> Any:
        return self.model.device

    def embed(self, prompt: str, negative: str | None = None) -> Any:
        """(cond, uncond) text conditioning: each (token states, pooled); uncond is `negative` or the empty caption."""
        states, pooled = self.model.text_conditioning([prompt, negative or ""])
        return (states[:1], pooled[:1]), (states[1:], pooled[1:])

    def predict(self, x: Any, t: Any, embeddings: Any, guidance: float) -> Any:
        (cond_states, cond_pooled), (uncond_states, uncond_pooled) = embeddings
        cond = self.model.denoise(x, t, cond_states, cond_pooled)
        if guidance == 1.0:  # the model's own sampling: the conditional prediction, one evaluation
            return cond
        return self.model.denoise(x, t, uncond_states, uncond_pooled).lerp(cond, guidance)

    def encode(self, image: Any) -> Any:
        import numpy as np
        import torch

        from imgbench.worlds.shapes import nets

        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
        return nets.pack(pixels[None].div(127.5).sub(1.0)).to(self.device)

    def decode(self, latents: Any) -> Any:
        from imgbench.worlds.shapes import nets

        return nets.to_images(latents)[0]
