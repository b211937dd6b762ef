"""Instruct-Pix2Pix editors through diffusers (Brooks et al., CVPR 2023; methods_apis.md §(a)).

`timbrooks/instruct-pix2pix` (SD 1.5, `StableDiffusionInstructPix2PixPipeline`) and
`diffusers/sdxl-instructpix2pix-768` (SDXL, `StableDiffusionXLInstructPix2PixPipeline`); the class
comes from the repo's `model_index.json`. Weights resolve through `imgbench.models.hub` before any
loading, so the commit actually served is in the run identity and a missing editor fails in
seconds naming the repo and the fix.

Behaviour worth knowing:
- Resolution: the image is edited at `resolution` (its long side; sides snapped down to multiples of
  64, as the original `edit_cli.py` does) and the result is resized back to the input's own size. So a
  1024² SDXL base image is edited at 768² by the SDXL editor (the resolution it was trained at) and
  comes back at 1024²; SD 1.5's editor works at 512.
- Guidance: diffusers runs two-way classifier-free guidance only when `guidance_scale > 1` *and*
  `image_guidance_scale >= 1`; an image scale below 1 silently disables both, so it is refused here.
- Determinism: each image is edited in its own pipeline call with its own CPU generator seeded by the
  item's seed, so an edit never depends on batch size or position (DESIGN §4).
- Safety checker and invisible watermark are off (research runs; both change pixels).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.models.hub import ResolvedSource, WeightSource, resolve_all

PIPELINES = {"StableDiffusionInstructPix2PixPipeline": "sd15", "StableDiffusionXLInstructPix2PixPipeline": "sdxl"}
SIDE_MULTIPLE = 64
SHAPES_EDITOR = "shapes-ip2p"
"""The shapes world's editor (imgbench/worlds/shapes/ip2p.py): no diffusers pipeline (the world has no VAE)."""


def check_guidance(guidance_scale: float, image_guidance_scale: float, steps: int) -> None:
    """Refuse settings diffusers would silently ignore or cannot run."""
    if float(image_guidance_scale) < 1:
        raise UserError(f"image_guidance_scale={image_guidance_scale} is below 1: diffusers then silently turns off "
                        f"classifier-free guidance for both text and image (it needs image_guidance_scale >= 1 and "
                        f"guidance_scale > 1). Use image_guidance_scale >= 1 (model cards: 1.0-1.5).")
    if float(guidance_scale) < 1:
        raise UserError(f"guidance_scale={guidance_scale} is below 1; use a text guidance scale of at least 1 "
                        f"(model cards: 7.5 for SD 1.5, 3.0 for SDXL).")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be a whole number of at least 1, got {steps!r}.")


def edit_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) to edit at: long side `resolution`, both sides snapped down to multiples of 64."""
    scale = resolution / max(width, height)
    snap = [max(SIDE_MULTIPLE, int(side * scale) // SIDE_MULTIPLE * SIDE_MULTIPLE) for side in (width, height)]
    return snap[0], snap[1]


def make_editor(editor: str, revision: str | None, editor_path: str | None, steps: int, guidance_scale: float,
                image_guidance_scale: float, scheduler: str | None, resolution: int, device: str | None,
                dtype: str) -> Any:
    """The shapes world's editor for `editor=shapes-ip2p`, else a diffusers Instruct-Pix2Pix pipeline."""
    if editor != SHAPES_EDITOR:
        return DiffusersEditor(editor, revision, editor_path, steps, guidance_scale, image_guidance_scale, scheduler,
                               resolution, device, dtype)
    from imgbench.worlds.shapes.ip2p import ShapesEditor
    from imgbench.worlds.shapes.render import CANVAS

    refused = {"revision": revision, "scheduler": scheduler}
    refused = {key: value for key, value in refused.items() if value}
    if refused or resolution != CANVAS or dtype != "fp32":
        raise UserError(f"{SHAPES_EDITOR} is a local world part edited at {CANVAS} px in fp32 with its own DDIM "
                        f"sampler: it takes no revision or scheduler and needs resolution={CANVAS} and "
                        f"editor_dtype=fp32 (got revision={revision}, scheduler={scheduler}, resolution={resolution}, "
                        f"editor_dtype={dtype}).")
    check_guidance(guidance_scale, image_guidance_scale, steps)
    return ShapesEditor(editor_path, steps, guidance_scale, image_guidance_scale, device)


class DiffusersEditor:
    """An Instruct-Pix2Pix pipeline at fixed settings; `edit` maps (images, instructions, seeds) to images."""

    def __init__(self, editor: str, revision: str | None = None, editor_path: str | None = None, steps: int = 10,
                 guidance_scale: float = 7.5, image_guidance_scale: float = 1.5, scheduler: str | None = None,
                 resolution: int = 512, device: str | None = None, dtype: str = "fp16") -> None:
        check_guidance(guidance_scale, image_guidance_scale, steps)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < SIDE_MULTIPLE:
            raise UserError(f"resolution must be a whole number of pixels of at least {SIDE_MULTIPLE}, "
                            f"got {resolution!r}.")
        source = WeightSource(role="Instruct-Pix2Pix editor", repo_id=editor, revision=revision,
                              local_path=editor_path, flag="--method-arg editor_path=DIR")
        self.resolved: ResolvedSource = resolve_all({"editor": source})["editor"]
        self.settings = {"steps": steps, "guidance_scale": float(guidance_scale),
                         "image_guidance_scale": float(image_guidance_scale), "scheduler": scheduler or "repo default",
                         "resolution": resolution, "dtype": dtype}
        self.device, self.dtype, self.scheduler = device, dtype, scheduler
        self._pipe: Any = None
        self.kind = PIPELINES.get(self._class_name())
        if self.kind is None:
            raise UserError(f"{editor_path or editor} is a {self._class_name()!r}, not an Instruct-Pix2Pix pipeline "
                            f"({', '.join(PIPELINES)}).")

    def identity(self) -> dict[str, Any]:
        """The served weights (commit or folder digest) and every setting that changes pixels."""
        return {"weights": self.resolved.identity(), "pipeline": self.kind, **self.settings}

    def parts(self) -> list[dict[str, Any]]:
        """Hub editors are foundation models here: trained elsewhere, on no seed of this benchmark."""
        return []

    def _class_name(self) -> str:
        if self.resolved.digest:
            index = Path(self.resolved.location) / "model_index.json"
        else:
            from huggingface_hub import hf_hub_download

            index = Path(hf_hub_download(self.resolved.location, "model_index.json",
                                         **self.resolved.load_kwargs()))
        return str(json.loads(index.read_text()).get("_class_name"))

    @property
    def pipeline(self) -> Any:
        """Loaded on first edit: a run whose answers all say "nothing to change" never loads it."""
        if self._pipe is None:
            import diffusers

            from imgbench.models.diffusers_base import dtype_kwarg, resolve_device

            cls = getattr(diffusers, {v: k for k, v in PIPELINES.items()}[self.kind])
            off = {"safety_checker": None, "requires_safety_checker": False} if self.kind == "sd15" else \
                {"add_watermarker": False}
            kwargs = {**self.resolved.load_kwargs(), **dtype_kwarg(self.dtype), **off}
            try:
                pipe = cls.from_pretrained(self.resolved.location, **kwargs)
            except OSError as exc:
                raise UserError(f"loading the editor {self.resolved.location} failed: {exc}. Pre-download it with "
                                f"`{self.resolved.source.download_command()}` or pass --method-arg editor_path=DIR.") \
                    from exc
            if self.scheduler:
                from imgbench.models.diffusers_base import DiffusersModel

                pipe.scheduler = DiffusersModel._scheduler_class(self.scheduler).from_config(pipe.scheduler.config)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe.to(resolve_device(self.device))
        return self._pipe

    def edit(self, images: Sequence[Any], instructions: Sequence[str], seeds: Sequence[int]) -> list[Any]:
        """One edited image per input, each at its input's size."""
        import torch
        from PIL import Image

        pipe, out = self.pipeline, []
        for image, instruction, seed in zip(images, instructions, seeds, strict=True):
            width, height = image.size
            size = edit_size(width, height, self.settings["resolution"])
            source = image.convert("RGB").resize(size, Image.Resampling.LANCZOS) if size != image.size else image
            extra = {"height": size[1], "width": size[0]} if self.kind == "sdxl" else {}
            with torch.inference_mode():
                edited = pipe(instruction, image=source, num_inference_steps=self.settings["steps"],
                              guidance_scale=self.settings["guidance_scale"],
                              image_guidance_scale=self.settings["image_guidance_scale"],
                              generator=torch.Generator("cpu").manual_seed(int(seed)), **extra).images[0]
            out.append(edited.resize((width, height), Image.Resampling.LANCZOS) if edited.size != image.size
                       else edited)
        return out
