"""SLD's latent operations and frozen-step re-generation (Wu et al., CVPR 2024, §3.3) on a backend (backends.py):
an SD 1.5-class pipeline, or the shapes world's model (packed pixels, one latent cell = 2×2 pixels).

A *trajectory* is the list of latents a DDIM sampler with `steps` steps sees: entry i is the input of step i
(timestep `timesteps[i]`, entry 0 the noisiest), entry `steps` the clean latent; shape (steps + 1, 1, C, h, w).

1. The current image is DDIM-inverted (diffusers `DDIMInverseScheduler` built from the backend's own sampler
   config, so its timesteps are the sampler's reversed, trailing spacing included; the backend's inversion
   prompt: "A realistic photo of a scene" on SD 1.5, the empty caption on shapes) into the background trajectory B.
2. Operations compose C from B, each touching only its mask (latent grid, SAM mask area-downsampled, threshold
   0.05, dilated by `dilate` cells):
   - delete: the region becomes fresh Gaussian noise at every step (seed `bg_seed`), so it is re-synthesised
     as background (the original's `remove_region`); where the backend knows its empty canvas (`blank`: the
     shapes world's black picture) the region takes that canvas's inverted trajectory instead and is frozen like
     a placed object (fresh noise there is what the shapes model fills with a new object);
   - reposition: the object's latents (its box, inside its mask) are moved into the new box at every step,
     resized bilinearly if the box size changed; its old place is deleted. (The original rescales at image
     level and re-inverts; moving latents is one inversion cheaper and exact for a pure translation.)
   - attribute: masked re-denoising: from B at step (1 - `attribute_strength`) x steps (with `attribute_noise`,
     fresh noise inside the mask), DDIM with the prompt
     "a <new name>" and, after every step, B restored outside the mask (the original uses SD 2.1 DiffEdit
     and re-inverts the edited image; this keeps one model and no second inversion);
   - add: the object is generated alone (the backend's object prompt: "a realistic photo of a <name>" on SD 1.5,
     "a <name>" on shapes; seed `fg_seed` + i) recording its trajectory, located in its own image by the
     detector (and SAM on SD 1.5), and its latents moved into the new box
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

from imgbench.methods.sld.backends import Backend
from imgbench.methods.sld.operations import Operation, base_name

logger = logging.getLogger(__name__)

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
    """DDIM inversion, sampling with kept regions, and SLD's composition on one backend (backends.py)."""

    def __init__(self, backend: Backend, steps: int = 50, guidance: float = 2.5, object_guidance: float = 7.5,
                 inversion_guidance: float = 2.5, frozen_step_ratio: float = 0.5, attribute_strength: float = 0.8,
                 dilate: int = 1, bg_seed: int = 42, fg_seed: int = 9487, inversion_floor: float = 0.0,
                 attribute_noise: bool = False) -> None:
        """`attribute_noise`: an attribute change starts its mask from fresh noise (the delete noise) rather than
        the inverted latents, for a model whose text conditioning loses against its own inverted noise (the
        shapes model at guidance 1 redraws the old colour from it). `inversion_floor`: the sampler's first rungs
        whose ᾱ lies below it are skipped (the trajectory starts at the first rung at or above it). A
        zero-terminal-SNR ladder (the shapes sampler's trailing spacing starts at ᾱ = 2e-9) keeps no trace of the
        image at its first rung, so no inversion can return there."""
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        self.backend = backend
        self.guidance, self.object_guidance, self.inversion_guidance = guidance, object_guidance, inversion_guidance
        self.dilate, self.bg_seed, self.fg_seed = int(dilate), int(bg_seed), int(fg_seed)
        self.attribute_noise = bool(attribute_noise)
        self.scheduler = DDIMScheduler.from_config(backend.scheduler_config)
        # the inverse steps with ε: a v-prediction is converted at the timestep the model was asked about
        self.inverse = DDIMInverseScheduler.from_config({**backend.scheduler_config, "prediction_type": "epsilon"})
        self.scheduler.set_timesteps(int(steps))
        self.inverse.set_timesteps(int(steps))
        ladder = self.inverse.timesteps.tolist()
        # the inverse step goes from t - num_train_timesteps // steps to t: that must be the sampler's previous rung
        stride = self.inverse.config.num_train_timesteps // int(steps)
        if ladder[::-1] != self.scheduler.timesteps.tolist() or any(b - a != stride for a, b in zip(
                ladder, ladder[1:], strict=False)):
            raise ValueError(f"DDIM and DDIM-inverse timesteps do not line up for this scheduler config at {steps} "
                             f"steps (choose steps dividing {self.inverse.config.num_train_timesteps})")
        alphas = self.scheduler.alphas_cumprod
        self.timesteps = [t for t in self.scheduler.timesteps if alphas[t] >= inversion_floor]
        self.steps = len(self.timesteps)
        self.frozen_steps = int(self.steps * min(max(float(frozen_step_ratio), 0.0), 1.0))
        self.attribute_start = int(self.steps * (1.0 - min(max(float(attribute_strength), 0.0), 1.0)))
        self.denoising_steps = 0
        """UNet evaluations (one per step, a CFG pair counted once): what the item's cost counts."""

    # -- pieces ----------------------------------------------------------------------------------------------

    def _eps(self, x: Any, t: Any, embeddings: Any, guidance: float) -> Any:
        self.denoising_steps += 1
        return self.backend.predict(x, t, embeddings, guidance)

    def _as_epsilon(self, prediction: Any, x: Any, t: Any) -> Any:
        """ε from the model's output at timestep t for input x (v = √ᾱ ε − √(1-ᾱ) x₀ ⇒ ε = √ᾱ v + √(1-ᾱ) x)."""
        if self.scheduler.config.prediction_type == "epsilon":
            return prediction
        if self.scheduler.config.prediction_type != "v_prediction":
            raise ValueError(f"SLD's inversion handles epsilon and v_prediction, not "
                             f"{self.scheduler.config.prediction_type}")
        alpha = self.scheduler.alphas_cumprod[t].to(x)
        return alpha.sqrt() * prediction + (1 - alpha).sqrt() * x

    def noise(self, seed: int, shape: tuple[int, ...]) -> Any:
        import torch

        generator = torch.Generator("cpu").manual_seed(int(seed))
        return torch.randn(shape, generator=generator).to(self.backend.device, self.backend.dtype)

    def invert(self, image: Any) -> Any:
        """The DDIM-inversion trajectory of `image` (entry 0 noisiest, entry `steps` its clean latent)."""
        import torch

        embeddings = self.backend.embed(self.backend.inversion_prompt)
        x = self.backend.encode(image).to(self.backend.dtype)
        out = [x]
        for t in self.timesteps[::-1]:
            prediction = self._eps(x, t, embeddings, self.inversion_guidance)
            x = self.inverse.step(self._as_epsilon(prediction, x, t), t, x).prev_sample
            out.append(x)
        return torch.stack(out[::-1])

    def sample(self, prompt: str, start: Any, guidance: float, first: int = 0, keep: Any = None,
               reference: Any = None, keep_until: int = 0, negative: str | None = None) -> Any:
        """DDIM from `start` at step `first`; for steps < `keep_until` the cells in `keep` are reset to
        `reference` after every step. Returns a full trajectory (entries before `first` from `reference`)."""
        import torch

        embeddings = self.backend.embed(prompt, negative)
        x = start
        out = list(reference[:first]) if first else []
        if keep is not None and first < keep_until:
            x = x.where(~keep.to(x.device), reference[first])
        out.append(x)
        for i in range(first, self.steps):
            t = self.timesteps[i]
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
        blank = self.backend.blank is not None and any(op.kind in ("delete", "reposition") for op in operations)
        fill = self.invert(self.backend.blank) if blank else noise
        placed = torch.zeros(height, width, dtype=torch.bool, device=latents.device)
        removed = torch.zeros_like(placed)
        composition = Composition(latents, placed)
        for op in operations:
            if op.kind in ("delete", "reposition"):
                mask = masks.get(op.name, box_mask(op.old_box, height, width)).to(latents.device)
                latents, removed = delete(latents, mask, fill), removed | mask
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
                prompt = self.backend.attribute_prompt.format(name=base_name(op.new_name or op.name))
                start = background[self.attribute_start]
                if self.attribute_noise:
                    start = start.where(~written, noise[self.attribute_start].to(start))
                edited = self.sample(prompt, start, self.object_guidance, self.attribute_start, ~written, background,
                                     self.steps)
                latents = latents.where(~written, edited)
            elif op.kind == "add":
                start = self.noise(self.fg_seed + seed + index, tuple(background.shape[1:]))
                alone = self.sample(self.backend.object_prompt.format(name=base_name(op.name)), start,
                                    self.object_guidance)
                box, mask = locate(self.backend.decode(alone[-1]), base_name(op.name))
                latents, written = transplant(latents, alone, box, mask, op.new_box)
            else:
                continue
            composition.masks.append((op, written))
            placed = placed | written
        composition.latents = latents
        composition.frozen = placed | removed if blank else placed if placed.any() else ~removed
        return composition

    def regenerate(self, composition: Composition, prompt: str, negative: str | None = None) -> Any:
        """The final image: DDIM from C[0], frozen region held to C for the first `frozen_steps` steps; the
        parse's negation, if any, is the negative prompt (as the original's `extra_neg_prompt`)."""
        trajectory = self.sample(prompt, composition.latents[0], self.guidance, keep=composition.frozen,
                                 reference=composition.latents, keep_until=self.frozen_steps, negative=negative)
        return self.backend.decode(trajectory[-1])
