"""SLD's latent operations and frozen-step re-generation on an SD 1.5-class pipeline (Wu et al., CVPR 2024, §3.3).

A *trajectory* is the list of latents a DDIM sampler with `steps` steps sees: entry i is the input of step i
(timestep `timesteps[i]`, entry 0 the noisiest), entry `steps` the clean latent; shape (steps + 1, 1, 4, h, w).

1. The current image is DDIM-inverted (diffusers `DDIMInverseScheduler`, prompt "A realistic photo of a scene")
   into the background trajectory B.
2. Operations compose C from B, each touching only its mask (latent grid, SAM mask area-downsampled, threshold
   0.05, dilated by `dilate` cells):
   - delete: the region becomes fresh Gaussian noise at every step (seed `bg_seed`), so it is re-synthesised
     as background (the original's `remove_region`);
   - reposition: the object's latents (its box, inside its mask) are moved into the new box at every step,
     resized bilinearly if the box size changed; its old place is deleted. (The original rescales at image
     level and re-inverts; moving latents is one inversion cheaper and exact for a pure translation.)
   - attribute: masked re-denoising: from B at step (1 - `attribute_strength`) x steps, DDIM with the prompt
     "a <new name>" and, after every step, B restored outside the mask (the original uses SD 2.1 DiffEdit
     and re-inverts the edited image; this keeps one model and no second inversion);
   - add: the object is generated alone ("a realistic photo of a <name>", seed `fg_seed` + i) recording its
     trajectory, located in its own image by the detector and SAM, and its latents moved into the new box
     (the original generates it in the box with GLIGEN, which current diffusers no longer ships upstream).
3. Re-generation: DDIM from C[0] with "<background> with a <obj>, ..." (the parse's negation as the negative
   prompt) and CFG `guidance`; for the first
   k = int(`frozen_step_ratio` x steps) steps the latents inside the frozen region are set to C's after every
   step. The frozen region is every placed object's mask (add, reposition, attribute); when the only operations
   are deletions, everything outside the deleted regions (as the original).

Not built: GLIGEN box conditioning and the attention-guidance losses of LMD+, and the optional SDXL refiner.
SDXL / FLUX images take the original's downscale route: resized to `resolution` (512) for detection and latent
operations on an SD 1.5-class pipeline, the result resized back to the image's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imgbench.methods.sld.operations import Operation, base_name

logger = logging.getLogger(__name__)

INVERSION_PROMPT = "A realistic photo of a scene"
MASK_THRESHOLD = 0.05


@dataclass
class Composition:
    """C, the frozen region, and each operation's mask (latent grid, bool) for the artefacts and the tests."""

    latents: Any
    frozen: Any
    masks: list[tuple[Operation, Any]] = field(default_factory=list)


def box_cells(box: tuple[float, ...] | list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """[x, y, w, h] in [0, 1] → (y0, y1, x0, x1) latent cells, at least one cell each way."""
    x0, y0 = int(box[0] * width), int(box[1] * height)
    x1 = max(x0 + 1, min(width, round((box[0] + box[2]) * width)))
    y1 = max(y0 + 1, min(height, round((box[1] + box[3]) * height)))
    return min(y0, height - 1), y1, min(x0, width - 1), x1


def box_mask(box: tuple[float, ...] | list[float], height: int, width: int) -> Any:
    import torch

    mask = torch.zeros(height, width, dtype=torch.bool)
    y0, y1, x0, x1 = box_cells(box, height, width)
    mask[y0:y1, x0:x1] = True
    return mask


def to_latent_mask(pixels: Any, height: int, width: int, dilate: int = 0) -> Any:
    """A pixel mask (H, W) → latent cells covered at least `MASK_THRESHOLD`, dilated by `dilate` cells."""
    import torch
    import torch.nn.functional as F

    area = F.interpolate(torch.as_tensor(pixels, dtype=torch.float32)[None, None], size=(height, width),
                         mode="area")
    if dilate:
        area = F.max_pool2d(area, 2 * dilate + 1, stride=1, padding=dilate)
    return area[0, 0] > MASK_THRESHOLD


def delete(latents: Any, mask: Any, noise: Any) -> Any:
    """Fresh noise inside `mask` at every step; nothing else changes."""
    m = mask.to(latents.device)
    return latents.where(~m, noise.to(latents))


def transplant(latents: Any, source: Any, source_box: Any, source_mask: Any, box: Any) -> tuple[Any, Any]:
    """Move `source`'s latents in `source_box` (inside `source_mask`) into `box` of `latents`; returns
    (new latents, the cells written)."""
    import torch
    import torch.nn.functional as F

    height, width = latents.shape[-2:]
    sy0, sy1, sx0, sx1 = box_cells(source_box, height, width)
    y0, y1, x0, x1 = box_cells(box, height, width)
    crop = source[..., sy0:sy1, sx0:sx1].flatten(0, 1)
    crop_mask = source_mask[sy0:sy1, sx0:sx1].to(latents.device)
    if (sy1 - sy0, sx1 - sx0) != (y1 - y0, x1 - x0):
        crop = F.interpolate(crop, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
        crop_mask = F.interpolate(crop_mask[None, None].float(), size=(y1 - y0, x1 - x0), mode="nearest")[0, 0] > 0
    written = torch.zeros(height, width, dtype=torch.bool, device=latents.device)
    written[y0:y1, x0:x1] = crop_mask
    out = latents.clone()
    region = out[..., y0:y1, x0:x1]
    region.copy_(region.where(~crop_mask, crop.reshape(region.shape).to(out)))
    return out, written


class LatentEditor:
    """DDIM inversion, sampling with kept regions, and SLD's composition on one SD 1.5-class pipeline."""

    def __init__(self, pipe: Any, steps: int = 50, guidance: float = 2.5, object_guidance: float = 7.5,
                 inversion_guidance: float = 2.5, frozen_step_ratio: float = 0.5, attribute_strength: float = 0.8,
                 dilate: int = 1, bg_seed: int = 42, fg_seed: int = 9487) -> None:
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        self.pipe, self.steps = pipe, int(steps)
        self.guidance, self.object_guidance, self.inversion_guidance = guidance, object_guidance, inversion_guidance
        self.frozen_steps = int(self.steps * min(max(float(frozen_step_ratio), 0.0), 1.0))
        self.attribute_start = int(self.steps * (1.0 - min(max(float(attribute_strength), 0.0), 1.0)))
        self.dilate, self.bg_seed, self.fg_seed = int(dilate), int(bg_seed), int(fg_seed)
        config = {k: v for k, v in pipe.scheduler.config.items() if k != "skip_prk_steps"}
        self.scheduler = DDIMScheduler.from_config(config)
        self.inverse = DDIMInverseScheduler.from_config(config)
        self.scheduler.set_timesteps(self.steps)
        self.inverse.set_timesteps(self.steps)
        if self.inverse.timesteps.flip(0).tolist() != self.scheduler.timesteps.tolist():
            raise ValueError("DDIM and DDIM-inverse timesteps do not line up for this scheduler config")
        self.denoising_steps = 0
        """UNet evaluations (one per step, a CFG pair counted once): what the item's cost counts."""

    # -- pieces ----------------------------------------------------------------------------------------------

    @property
    def device(self) -> Any:
        return self.pipe.unet.device

    def latent_size(self, resolution: int) -> tuple[int, int]:
        side = resolution // self.pipe.vae_scale_factor
        return side, side

    def embed(self, prompt: str, negative: str | None = None) -> Any:
        import torch

        cond, uncond = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt=negative)
        return torch.cat([uncond, cond])

    def _eps(self, x: Any, t: Any, embeddings: Any, guidance: float) -> Any:
        self.denoising_steps += 1
        model_in = self.scheduler.scale_model_input(x.repeat(2, 1, 1, 1), t)
        uncond, cond = self.pipe.unet(model_in, t, encoder_hidden_states=embeddings).sample.chunk(2)
        return uncond + guidance * (cond - uncond)

    def encode(self, image: Any) -> Any:
        vae = self.pipe.vae
        pixels = self.pipe.image_processor.preprocess(image).to(self.device, vae.dtype)
        return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor

    def decode(self, latents: Any) -> Any:
        vae = self.pipe.vae
        pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return self.pipe.image_processor.postprocess(pixels, output_type="pil")[0]

    def noise(self, seed: int, shape: tuple[int, ...]) -> Any:
        import torch

        generator = torch.Generator("cpu").manual_seed(int(seed))
        return torch.randn(shape, generator=generator).to(self.device, self.pipe.unet.dtype)

    def invert(self, image: Any) -> Any:
        """The DDIM-inversion trajectory of `image` (entry 0 noisiest, entry `steps` its clean latent)."""
        import torch

        embeddings = self.embed(INVERSION_PROMPT)
        x = self.encode(image).to(self.pipe.unet.dtype)
        out = [x]
        for t in self.inverse.timesteps:
            x = self.inverse.step(self._eps(x, t, embeddings, self.inversion_guidance), t, x).prev_sample
            out.append(x)
        return torch.stack(out[::-1])

    def sample(self, prompt: str, start: Any, guidance: float, first: int = 0, keep: Any = None,
               reference: Any = None, keep_until: int = 0, negative: str | None = None) -> Any:
        """DDIM from `start` at step `first`; for steps < `keep_until` the cells in `keep` are reset to
        `reference` after every step. Returns a full trajectory (entries before `first` from `reference`)."""
        import torch

        embeddings = self.embed(prompt, negative)
        x = start
        out = list(reference[:first]) if first else []
        if keep is not None and first < keep_until:
            x = x.where(~keep.to(x.device), reference[first])
        out.append(x)
        for i in range(first, self.steps):
            t = self.scheduler.timesteps[i]
            x = self.scheduler.step(self._eps(x, t, embeddings, guidance), t, x).prev_sample
            if keep is not None and i + 1 <= keep_until:
                x = x.where(~keep.to(x.device), reference[i + 1])
            out.append(x)
        return torch.stack(out)

    # -- SLD -------------------------------------------------------------------------------------------------

    def compose(self, background: Any, operations: list[Operation], masks: dict[str, Any],
                locate: Callable[[Any, str], tuple[Any, Any]], seed: int = 0) -> Composition:
        """C from the background trajectory. `masks[name]` is a detected object's latent mask; `locate(image,
        name)` finds an added object in its own image → (box, latent mask). The item's `seed` offsets
        `bg_seed` and `fg_seed`, so seeds stay a crossed factor (DESIGN §6)."""
        import torch

        height, width = background.shape[-2:]
        latents = background.clone()
        noise = self.noise(self.bg_seed + seed, tuple(background.shape))
        placed = torch.zeros(height, width, dtype=torch.bool, device=latents.device)
        removed = torch.zeros_like(placed)
        composition = Composition(latents, placed)
        for op in operations:
            if op.kind in ("delete", "reposition"):
                mask = masks.get(op.name, box_mask(op.old_box, height, width)).to(latents.device)
                latents, removed = delete(latents, mask, noise), removed | mask
                if op.kind == "delete":
                    composition.masks.append((op, mask))
        for index, op in enumerate(operations):
            if op.kind == "reposition":
                mask = masks.get(op.name, box_mask(op.old_box, height, width))
                latents, written = transplant(latents, background, op.old_box, mask, op.new_box)
                composition.masks.append((op, written | mask.to(written.device)))  # its old place was deleted
                placed = placed | written
                continue
            elif op.kind == "attribute":
                written = masks.get(op.name, box_mask(op.old_box, height, width)).to(latents.device)
                edited = self.sample(f"a {base_name(op.new_name or op.name)}", background[self.attribute_start],
                                     self.object_guidance, self.attribute_start, ~written, background, self.steps)
                latents = latents.where(~written, edited)
            elif op.kind == "add":
                start = self.noise(self.fg_seed + seed + index, tuple(background.shape[1:]))
                alone = self.sample(f"a realistic photo of a {base_name(op.name)}", start, self.object_guidance)
                box, mask = locate(self.decode(alone[-1]), base_name(op.name))
                latents, written = transplant(latents, alone, box, mask, op.new_box)
            else:
                continue
            composition.masks.append((op, written))
            placed = placed | written
        composition.latents = latents
        composition.frozen = placed if placed.any() else ~removed
        return composition

    def regenerate(self, composition: Composition, prompt: str, negative: str | None = None) -> Any:
        """The final image: DDIM from C[0], frozen region held to C for the first `frozen_steps` steps; the
        parse's negation, if any, is the negative prompt (as the original's `extra_neg_prompt`)."""
        trajectory = self.sample(prompt, composition.latents[0], self.guidance, keep=composition.frozen,
                                 reference=composition.latents, keep_until=self.frozen_steps, negative=negative)
        return self.decode(trajectory[-1])
