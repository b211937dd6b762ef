"""What every diffusers-backed model shares: weight resolution, device/dtype, lazy loading,
per-image generators and the IP-token plumbing around a family-specific pipeline call.

Construction resolves *which* weights will be used (hub commit or folder digest, see hub.py)
so `identity()` can key the run cache, and fails fast with a fix-it message when they are
missing; torch and diffusers are imported only after that, and weights load on first use.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from imgbench.api.model import Model
from imgbench.devices import check_device
from imgbench.errors import UserError
from imgbench.models.hub import ResolvedSource, WeightSource, resolve_all
from imgbench.models.memory import DTYPE_BYTES, GB, check_fits, folder_params
from imgbench.util.quiet import quiet_loaders
from imgbench.util.text import as_bool

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from imgbench.api.records import GenerationRequest
    from imgbench.models.ip_adapter import IPAdapterTokens

logger = logging.getLogger(__name__)

#: Bumped when this module changes how pixels are produced for the same settings.
IMPLEMENTATION_VERSION = 1


def resolve_device(device: str | None) -> str:
    """'cuda' when a GPU is visible, else 'mps', else 'cpu'; an explicit device is checked."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return check_device(str(device))


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def dtype_kwarg(name: str) -> dict[str, Any]:
    """`from_pretrained`'s dtype argument: diffusers 0.42 renamed `torch_dtype` to `dtype` (PR #14205)."""
    import diffusers
    from packaging.version import Version

    key = "dtype" if Version(diffusers.__version__).release >= (0, 42) else "torch_dtype"
    return {key: torch_dtype(name)}


class DiffusersModel(Model):
    """A diffusers pipeline behind the `Model` contract.

    Subclasses declare their weight sources and implement `_load_pipeline`, `_call` (one
    batched pipeline call) and optionally `_make_ip_adapter`. Settings that change pixels are
    recorded in `identity()`; offload and attention slicing only change speed and memory.
    """

    family: ClassVar[str] = "diffusers"
    #: dtype on an accelerator when none is given (fp16 for SD/SDXL, bf16 for FLUX).
    accelerator_dtype: ClassVar[str] = "fp16"

    def __init__(self, sources: dict[str, WeightSource], *, lazy_sources: dict[str, WeightSource] | None = None,
                 device: str | None, dtype: str | None, steps: int, guidance: float, scheduler: str | None,
                 cpu_offload: bool, attention_slicing: bool, memory_gb: float | None,
                 settings: dict[str, Any] | None = None) -> None:
        # Weights first: a missing model must fail in well under a second, before torch is imported,
        # naming every missing source at once.
        self.resolved: dict[str, ResolvedSource] = resolve_all(sources, lazy_sources)
        self.lazy_sources = dict(lazy_sources or {})
        self._lazy_identity = {role: src.declared() for role, src in self.lazy_sources.items()}
        if int(steps) < 1:
            raise UserError(f"steps must be at least 1, got {steps}.")
        if dtype not in (None, *DTYPE_BYTES):
            raise UserError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}.")
        self.device = resolve_device(device)
        self.dtype = dtype or (self.accelerator_dtype if self.device.split(":")[0] != "cpu" else "fp32")
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.scheduler = scheduler
        self.cpu_offload = as_bool(cpu_offload, "cpu_offload")
        if self.cpu_offload and not self.device.startswith("cuda"):
            raise UserError(f"cpu_offload needs a CUDA device (the model runs on {self.device}); drop "
                            f"--model-arg cpu_offload=true or use --device cuda.")
        self.attention_slicing = as_bool(attention_slicing, "attention_slicing")
        self.memory_gb = memory_gb
        self.settings = dict(settings or {})
        self.supports_image_tokens = bool(self.lazy_sources.get("ip_adapter"))
        self._pipe: Any = None
        self._ip: IPAdapterTokens | None = None

    # -- identity -------------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "implementation": IMPLEMENTATION_VERSION,
            "weights": {role: r.identity() for role, r in self.resolved.items()},
            "lazy_weights": self._lazy_identity,
            "dtype": self.dtype,
            "device_type": self.device.split(":")[0],
            "scheduler": self.scheduler or "repo default",
            "steps": self.steps,
            "guidance": self.guidance,
            **self.settings,
        }

    # -- loading ----------------------------------------------------------------------------------------------

    @property
    def pipeline(self) -> Any:
        """The diffusers pipeline, loaded (and memory-checked) on first use."""
        if self._pipe is None:
            self._check_memory()
            from huggingface_hub.errors import HfHubHTTPError

            quiet_loaders(load_diffusers=True)
            try:
                pipe = self._load_pipeline()
            except (OSError, HfHubHTTPError) as exc:
                raise UserError(self._load_failure(exc)) from exc
            if self.scheduler:
                pipe.scheduler = self._scheduler_class(self.scheduler).from_config(pipe.scheduler.config)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
            self._place()
        return self._pipe

    def _load_failure(self, exc: Exception) -> str:
        roles = ", ".join(f"{r.source.role} ({r.location})" for r in self.resolved.values())
        return (f"loading {roles} failed: {type(exc).__name__}: {exc}. If the files are missing, pre-download them "
                f"with `hf download <repo>` or point --model-path / the *_path model arguments at local folders; "
                f"gated repos (FLUX.1-dev) need `hf auth login` and the license accepted on the hub.")

    @staticmethod
    def _scheduler_class(name: str) -> Any:
        import diffusers

        cls = getattr(diffusers, name, None)
        if cls is None or not name.endswith("Scheduler"):
            known = sorted(n for n in dir(diffusers) if n.endswith("Scheduler") and not n.startswith("_"))
            raise UserError(f"unknown scheduler {name!r}; use a diffusers scheduler class name: {', '.join(known)}.")
        return cls

    def _place(self) -> None:
        """Put the pipeline on its device (or offload it); called again after an IP-Adapter is added."""
        pipe = self._pipe
        if self.cpu_offload:
            pipe.remove_all_hooks()
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        if self.attention_slicing:
            pipe.enable_attention_slicing()

    def _check_memory(self) -> None:
        """Count parameters of local weights exactly; fall back on the declared footprint."""
        per_component: dict[str, int] = {}
        bytes_per = DTYPE_BYTES[self.dtype]
        for role, resolved in self.resolved.items():
            folder = self._local_folder(resolved)
            for component, params in (folder_params(folder) if folder else {}).items():
                if role == "pipeline" and component in self.resolved:
                    continue  # replaced by a swapped-in component (unet, vae)
                per_component[f"{role}/{component}"] = params * bytes_per
        if not per_component and self.memory_gb:
            per_component["declared"] = int(float(self.memory_gb) * GB * bytes_per / 2)
        check_fits(f"model {self.family}", per_component, self.device, self.cpu_offload)

    @staticmethod
    def _local_folder(resolved: ResolvedSource) -> str | None:
        """The local folder holding a source's files (the probe's folder), if they are on disk."""
        from pathlib import Path

        if resolved.digest:
            return str(Path(resolved.location) / Path(resolved.source.probe).parent)
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(resolved.location, resolved.source.probe, cache_dir=resolved.source.cache_dir,
                                      revision=resolved.commit)
        return str(Path(path).parent) if isinstance(path, str) else None

    @abstractmethod
    def _load_pipeline(self) -> Any:
        """Build the diffusers pipeline from `self.resolved` (not yet on the device)."""

    # -- generation -------------------------------------------------------------------------------------------

    @property
    def size_multiple(self) -> int:
        return int(self.pipeline.vae_scale_factor)

    def generate(self, requests: Sequence[GenerationRequest], image_tokens: Any | None = None,
                 ip_scale: float = 0.0) -> list[Image]:
        """One image per request; each image's noise comes from its own CPU generator seeded with
        the request's seed, so it does not depend on batch size or position (DESIGN §4)."""
        import torch

        if not requests:
            return []
        tokens = None
        if image_tokens is not None:
            tokens = self._token_batch(image_tokens, len(requests))
        elif ip_scale:
            raise ValueError("ip_scale is set but no image_tokens were given")
        multiple = self.size_multiple
        order: dict[tuple[int, int], list[int]] = {}
        for index, request in enumerate(requests):
            if request.height % multiple or request.width % multiple:
                raise UserError(f"image size {request.height}x{request.width} is not a multiple of {multiple}, "
                                f"which {self.family} needs; change the task's height/width.")
            order.setdefault((request.height, request.width), []).append(index)
        images: list[Any] = [None] * len(requests)
        for (height, width), indices in order.items():
            generators = [torch.Generator("cpu").manual_seed(int(requests[i].seed)) for i in indices]
            prompts = [requests[i].prompt.text for i in indices]
            batch_tokens = tokens[indices] if tokens is not None else None
            with torch.inference_mode():
                made = self._call(prompts, generators, height, width, batch_tokens, float(ip_scale))
            for i, image in zip(indices, made, strict=True):
                images[i] = image
        return images

    @abstractmethod
    def _call(self, prompts: list[str], generators: list[torch.Generator], height: int, width: int,
              tokens: torch.Tensor | None, ip_scale: float) -> list[Image]:
        """One pipeline call for prompts of one size; `tokens` are projected IP tokens or None."""

    # -- IP-Adapter (DESIGN §4: what IMG needs) -------------------------------------------------------------------

    @property
    def ip_adapter(self) -> IPAdapterTokens:
        """The IP-Adapter, loaded on first use after any UNet swap (it rewrites attention processors)."""
        if not self.supports_image_tokens:
            raise UserError(f"model family {self.family!r} has no IP-Adapter, so it cannot encode or take image "
                            f"tokens; use an SDXL model (sdxl, sdxl-dpo, ...) or flux-dev.")
        if self._ip is None:
            pipe = self.pipeline
            from huggingface_hub.errors import HfHubHTTPError

            try:
                self._ip = self._make_ip_adapter(pipe)
            except (OSError, HfHubHTTPError) as exc:
                source = self.lazy_sources["ip_adapter"]
                raise UserError(source.missing_message(f"{type(exc).__name__}: {exc}")) from exc
            self._place()
        return self._ip

    def _make_ip_adapter(self, pipe: Any) -> IPAdapterTokens:
        raise NotImplementedError

    def encode_image(self, images: Sequence[Image]) -> torch.Tensor:
        """IP tokens of images: float32 tensor (batch, n_tokens, token_dim) on the model's device,
        i.e. image encoder + the adapter's projection, exactly what the UNet/transformer attends to."""
        return self.ip_adapter.encode(images)

    def null_image_tokens(self, n: int) -> torch.Tensor:
        """The negative branch's tokens (SDXL Plus: an all-zero image; FLUX XLabs: a black one), n times."""
        return self.ip_adapter.uncond_tokens().float().cpu().expand(n, -1, -1).clone()

    @property
    def image_token_shape(self) -> tuple[int, int]:
        """(n_tokens, token_dim) of this model's IP tokens (16 x 2048 for SDXL Plus, 4 x 4096 for FLUX XLabs)."""
        return self.ip_adapter.token_shape

    def _token_batch(self, image_tokens: Any, n: int) -> torch.Tensor:
        import numpy as np
        import torch

        adapter = self.ip_adapter
        if isinstance(image_tokens, torch.Tensor):
            tokens = image_tokens
        else:
            tokens = torch.stack([torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t
                                  for t in image_tokens])
        if tokens.ndim != 3 or tokens.shape[0] != n or tuple(tokens.shape[1:]) != adapter.token_shape:
            raise ValueError(f"image_tokens must have shape ({n}, {adapter.token_shape[0]}, {adapter.token_shape[1]}) "
                             f"(one entry per request), got {tuple(tokens.shape)}")
        return tokens.float()

    def close(self) -> None:
        """Drop the pipeline and free accelerator memory; the next call loads it again."""
        self._pipe = None
        self._ip = None
        import gc

        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
