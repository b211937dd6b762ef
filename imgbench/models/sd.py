"""Stable Diffusion 1.5 and SDXL, with swappable UNet / VAE weights and (SDXL) IP-Adapter Plus.

A preference-finetuned release (Diffusion-DPO, SPO, MaPO, KTO) is the base pipeline with its
UNet swapped (reference/methods_apis.md §(c)); the registry names it as its own model
(`sdxl-dpo` ...). The IP-Adapter is loaded after the swap, because loading it rewrites the
UNet's attention processors and `encoder_hid_proj`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbench.models.diffusers_base import DiffusersModel, dtype_kwarg, torch_dtype
from imgbench.models.hub import WeightSource
from imgbench.provenance import read_part

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from imgbench.models.ip_adapter import IPAdapterTokens


class StableDiffusionModel(DiffusersModel):
    """`StableDiffusionPipeline` (SD 1.x); the safety checker is off (it blacks out false positives).

    Defaults for a registered model come from its YAML (`imgbench/models/catalog/`); every
    `*_path` argument is a local folder laid out like the corresponding hub repo.
    """

    family = "sd15"
    pipeline_class = "PerRequestIPStableDiffusionPipeline"

    def __init__(self, hub_id: str | None = None, revision: str | None = None, model_path: str | None = None,
                 variant: str | None = None,
                 unet_id: str | None = None, unet_revision: str | None = None, unet_subfolder: str = "unet",
                 unet_path: str | None = None,
                 vae_id: str | None = None, vae_revision: str | None = None, vae_subfolder: str = "",
                 vae_path: str | None = None,
                 ip_adapter_id: str | None = None, ip_adapter_revision: str | None = None,
                 ip_adapter_subfolder: str = "", ip_adapter_weight: str = "ip-adapter-plus.safetensors",
                 image_encoder_folder: str = "models/image_encoder", ip_adapter_path: str | None = None,
                 steps: int = 50, guidance: float = 7.5, scheduler: str | None = None, negative_prompt: str = "",
                 device: str | None = None, dtype: str | None = None, cpu_offload: bool = False,
                 attention_slicing: bool = False, memory_gb: float | None = None,
                 cache_dir: str | None = None) -> None:
        # fp16 files on an accelerator, the plain ones on CPU: both while the dtype is not given (imgbench download)
        variants = ((None,) if not variant or dtype == "fp32" else (variant,) if dtype else (variant, None))
        swapped = tuple(role for role, given in (("unet", unet_id or unet_path), ("vae", vae_id or vae_path)) if given)
        sources = {"pipeline": WeightSource("base pipeline", hub_id, revision, model_path, cache_dir=cache_dir,
                                            variants=variants, without=swapped)}
        if unet_id or unet_path:
            sources["unet"] = _component("UNet", unet_id, unet_revision, unet_subfolder, unet_path, "unet_path",
                                         cache_dir)
        if vae_id or vae_path:
            sources["vae"] = _component("VAE", vae_id, vae_revision, vae_subfolder, vae_path, "vae_path", cache_dir)
        self.variant = variant if not model_path else None
        self.negative_prompt = negative_prompt
        self.subfolders = {"unet": unet_subfolder, "vae": vae_subfolder}
        lazy: dict[str, WeightSource] = {}
        self.ip_settings: dict[str, Any] = {}
        if ip_adapter_id or ip_adapter_path:
            probe = f"{ip_adapter_subfolder}/{ip_adapter_weight}".lstrip("/")
            lazy["ip_adapter"] = WeightSource("IP-Adapter", ip_adapter_id, ip_adapter_revision, ip_adapter_path,
                                              probe=probe, flag="--model-arg ip_adapter_path=DIR", cache_dir=cache_dir,
                                              files=(probe, f"{image_encoder_folder.strip('/')}/"))
            self.ip_settings = {"subfolder": ip_adapter_subfolder, "weight": ip_adapter_weight,
                                "image_encoder_folder": image_encoder_folder}
        super().__init__(sources, lazy_sources=lazy, device=device, dtype=dtype, steps=steps, guidance=guidance,
                         scheduler=scheduler, cpu_offload=cpu_offload, attention_slicing=attention_slicing,
                         memory_gb=memory_gb,
                         settings={"negative_prompt": negative_prompt, "weights_variant": self.variant,
                                   "ip_adapter": self.ip_settings or None})

    def parts(self) -> list[dict[str, Any]]:
        """A local UNet folder (`--model-arg unet_path=DIR`, e.g. from `imgbench train dpo`) is a trained part whose
        manifest may say which seeds its pairs were drawn with (DESIGN §8)."""
        unet = self.resolved.get("unet")
        if unet is None or not unet.source.local_path:
            return []
        folder = Path(unet.source.local_path)
        return [read_part(f"unet {folder}", folder / "manifest.json")]

    def _load_pipeline(self) -> Any:
        import diffusers

        dtype = dtype_kwarg(self.dtype)
        components: dict[str, Any] = {}
        for role, cls_name in (("unet", "UNet2DConditionModel"), ("vae", "AutoencoderKL")):
            if role in self.resolved:
                resolved = self.resolved[role]
                kwargs = resolved.load_kwargs()
                if self.subfolders[role]:
                    kwargs["subfolder"] = self.subfolders[role]
                components[role] = getattr(diffusers, cls_name).from_pretrained(resolved.location, **dtype,
                                                                                **kwargs)
        base = self.resolved["pipeline"]
        extra = {"safety_checker": None, "requires_safety_checker": False} if self.family == "sd15" else {}
        variant = {"variant": self.variant} if self.variant and self.dtype != "fp32" else {}
        from imgbench.models import pipelines

        return getattr(pipelines, self.pipeline_class).from_pretrained(
            base.location, **dtype, **variant, **base.load_kwargs(), **components, **extra)

    def _call(self, prompts: list[str], generators: list[torch.Generator], height: int, width: int,
              tokens: torch.Tensor | None, ip_scale: float) -> list[Image]:
        kwargs: dict[str, Any] = {}
        if self._ip is not None:  # once loaded, the UNet requires IP inputs: no tokens = zero tokens at scale 0
            kwargs = self._ip_kwargs(self._ip, tokens, ip_scale, len(prompts))
            with self._ip.injecting():
                return self._pipe_call(prompts, generators, height, width, kwargs)
        return self._pipe_call(prompts, generators, height, width, kwargs)

    def _pipe_call(self, prompts: list[str], generators: list[Any], height: int, width: int,
                   kwargs: dict[str, Any]) -> list[Image]:
        negative = [self.negative_prompt] * len(prompts) if self.negative_prompt else None
        return self.pipeline(prompt=prompts, negative_prompt=negative, height=height, width=width,
                             num_inference_steps=self.steps, guidance_scale=self.guidance, generator=generators,
                             output_type="pil", **kwargs).images

    def _ip_kwargs(self, ip: IPAdapterTokens, tokens: torch.Tensor | None, scale: float, n: int) -> dict[str, Any]:
        """Per-request projected tokens in the SDXL layout: cat([negative, positive]) when CFG is on."""
        import torch

        negative = ip.uncond_tokens().expand(n, -1, -1)
        positive = tokens if tokens is not None else torch.zeros_like(negative)
        ip.set_scale(scale if tokens is not None else 0.0)
        cfg = self.guidance > 1 and self.pipeline.unet.config.time_cond_proj_dim is None
        embeds = torch.cat([negative, positive.to(negative.device)]) if cfg else positive
        return {"ip_adapter_image_embeds": [ip.as_embeds(embeds)]}

    def _make_ip_adapter(self, pipe: Any) -> IPAdapterTokens:
        from imgbench.models.ip_adapter import load_sdxl_plus

        resolved = self.lazy_sources["ip_adapter"].resolve()
        return load_sdxl_plus(pipe, resolved, self.ip_settings["subfolder"], self.ip_settings["weight"],
                              self.ip_settings["image_encoder_folder"], torch_dtype(self.dtype))

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Per-token text-encoder states (B, 77, 768): what the UNet cross-attends to."""
        pipe = self.pipeline
        embeds, _ = pipe.encode_prompt(list(prompts), pipe._execution_device, 1, False)
        return embeds.float()


class SDXLModel(StableDiffusionModel):
    """`StableDiffusionXLPipeline` (base 1.0); with IP-Adapter Plus ViT-H its IP tokens are 16 x 2048."""

    family = "sdxl"
    pipeline_class = "PerRequestIPStableDiffusionXLPipeline"

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Per-token states of both text encoders, concatenated (B, 77, 2048): what the UNet cross-attends to."""
        pipe = self.pipeline
        embeds = pipe.encode_prompt(list(prompts), device=pipe._execution_device, num_images_per_prompt=1,
                                    do_classifier_free_guidance=False)[0]
        return embeds.float()


def _component(role: str, repo_id: str | None, revision: str | None, subfolder: str, path: str | None, flag: str,
               cache_dir: str | None) -> WeightSource:
    probe = f"{subfolder}/config.json".lstrip("/")
    return WeightSource(role, repo_id, revision, path, probe=probe, flag=f"--model-arg {flag}=DIR",
                        cache_dir=cache_dir)
