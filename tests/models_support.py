"""Shared tiny-model folders for the model tests (built once per test process, real diffusers classes).

Not a conftest: test modules import what they need. Folders live in one temporary directory
removed at exit; building them all takes a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from imgbench.api.records import GenerationRequest, Prompt

PROMPTS = [("a red cat on a box", 0), ("the blue dog", 1), ("a green ball near the tree", 2)]


@functools.cache
def tiny_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="imgbench-tiny-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def folders() -> dict[str, Path]:
    """Saved tiny pipelines (hub-snapshot layout), adapters and a swapped UNet."""
    from imgbench.models import tiny

    root = tiny_root()
    sdxl = tiny.tiny_sdxl_pipeline(seed=0)
    flux = tiny.tiny_flux_pipeline(seed=0)
    adapter, encoder = tiny.write_flux_ip_adapter(root / "flux-ip", flux.transformer, seed=0)
    paths = {
        "sd15": tiny.save_pipeline(tiny.tiny_sd15_pipeline(seed=0), root / "sd15"),
        "sdxl": tiny.save_pipeline(sdxl, root / "sdxl"),
        "sdxl-ip": tiny.write_sdxl_ip_adapter(root / "sdxl-ip", sdxl.unet, seed=0),
        "flux-dev": tiny.save_pipeline(flux, root / "flux-dev"),
        "flux-ip": adapter,
        "flux-encoder": encoder,
        "flux-schnell": tiny.save_pipeline(tiny.tiny_flux_pipeline(seed=0, guidance_embeds=False),
                                           root / "flux-schnell"),
    }
    # A DPO-style release: same UNet config, other weights, in a repo with a unet/ subfolder.
    tiny.tiny_unet_like(sdxl, seed=7).save_pretrained(root / "sdxl-dpo-unet" / "unet")
    paths["sdxl-dpo-unet"] = root / "sdxl-dpo-unet"
    return paths


def model_args(kind: str, ip: bool = True) -> dict:
    """Constructor arguments of a tiny model loaded from its folders (CPU, fp32, 2 steps)."""
    f = folders()
    args: dict = {"model_path": str(f[kind]), "device": "cpu", "dtype": "fp32", "steps": 2}
    if kind == "sdxl" and ip:
        args.update(ip_adapter_path=str(f["sdxl-ip"]), ip_adapter_subfolder="sdxl_models",
                    ip_adapter_weight="ip-adapter-plus_sdxl_vit-h.safetensors",
                    image_encoder_folder="models/image_encoder")
    if kind.startswith("flux"):
        args.update(max_sequence_length=32, guidance=3.5 if kind == "flux-dev" else 0.0)
    if kind == "flux-dev" and ip:
        args.update(ip_adapter_path=str(f["flux-ip"]), image_encoder_path=str(f["flux-encoder"]))
    return args


def make_model(kind: str, ip: bool = True, **overrides):
    from imgbench.models.flux import FluxModel
    from imgbench.models.sd import SDXLModel, StableDiffusionModel

    cls = {"sd15": StableDiffusionModel, "sdxl": SDXLModel, "flux-dev": FluxModel, "flux-schnell": FluxModel}[kind]
    return cls(**{**model_args(kind, ip), **overrides})


def requests(size: int = 32, items=PROMPTS) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=Prompt(id=str(i), text=text), seed=seed, height=size, width=size)
            for i, (text, seed) in enumerate(items)]


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def max_diff(a, b) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())
