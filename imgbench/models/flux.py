"""FLUX.1 [dev] / [schnell] with the XLabs IP-Adapter (4 x 4096 tokens) on [dev].

FLUX is guidance-distilled: `guidance` feeds the transformer's guidance embedding ([dev]
only); real classifier-free guidance ("true CFG", two passes per step) is used only when
`true_cfg` > 1, which the official XLabs/IMG regeneration does (true CFG 3.5, negative IP
branch = black image; reference/checkpoint_formats.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgbench.models.diffusers_base import DiffusersModel, dtype_kwarg, torch_dtype
from imgbench.models.hub import WeightSource

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from imgbench.models.ip_adapter import IPAdapterTokens


class FluxModel(DiffusersModel):
    """`FluxPipeline` (per-request IP embeddings); defaults for registered models come from their YAML."""

    family = "flux"
    accelerator_dtype = "bf16"

    def __init__(self, hub_id: str | None = None, revision: str | None = None, model_path: str | None = None,
                 ip_adapter_id: str | None = None, ip_adapter_revision: str | None = None,
                 ip_adapter_weight: str = "ip_adapter.safetensors", ip_adapter_path: str | None = None,
                 image_encoder_id: str | None = "openai/clip-vit-large-patch14",
                 image_encoder_revision: str | None = None, image_encoder_path: str | None = None,
                 steps: int = 30, guidance: float = 3.5, true_cfg: float = 1.0, negative_prompt: str = "",
                 max_sequence_length: int = 512, scheduler: str | None = None,
                 device: str | None = None, dtype: str | None = None, cpu_offload: bool = False,
                 attention_slicing: bool = False, memory_gb: float | None = None,
                 cache_dir: str | None = None) -> None:
        sources = {"pipeline": WeightSource("base pipeline", hub_id, revision, model_path, cache_dir=cache_dir)}
        lazy: dict[str, WeightSource] = {}
        if ip_adapter_id or ip_adapter_path:
            lazy["ip_adapter"] = WeightSource("IP-Adapter", ip_adapter_id, ip_adapter_revision, ip_adapter_path,
                                              probe=ip_adapter_weight, flag="--model-arg ip_adapter_path=DIR",
                                              cache_dir=cache_dir, files=(ip_adapter_weight,))
            lazy["image_encoder"] = WeightSource("IP-Adapter image encoder", image_encoder_id, image_encoder_revision,
                                                 image_encoder_path, probe="config.json",
                                                 flag="--model-arg image_encoder_path=DIR", cache_dir=cache_dir)
        self.ip_weight = ip_adapter_weight
        self.true_cfg = float(true_cfg)
        self.negative_prompt = negative_prompt
        self.max_sequence_length = int(max_sequence_length)
        super().__init__(sources, lazy_sources=lazy, device=device, dtype=dtype, steps=steps, guidance=guidance,
                         scheduler=scheduler, cpu_offload=cpu_offload, attention_slicing=attention_slicing,
                         memory_gb=memory_gb,
                         settings={"true_cfg": self.true_cfg, "max_sequence_length": self.max_sequence_length,
                                   "negative_prompt": negative_prompt if self.true_cfg > 1 else None,
                                   "ip_adapter": {"weight": ip_adapter_weight} if lazy else None})

    def _load_pipeline(self) -> Any:
        from imgbench.models.pipelines import PerRequestIPFluxPipeline

        base = self.resolved["pipeline"]
        return PerRequestIPFluxPipeline.from_pretrained(base.location, **dtype_kwarg(self.dtype),
                                                        **base.load_kwargs())

    @property
    def size_multiple(self) -> int:
        return int(self.pipeline.vae_scale_factor) * 2  # latents are packed into 2 x 2 patches

    def _make_ip_adapter(self, pipe: Any) -> IPAdapterTokens:
        from imgbench.models.ip_adapter import load_flux_xlabs

        return load_flux_xlabs(pipe, self.lazy_sources["ip_adapter"].resolve(), self.ip_weight,
                               self.lazy_sources["image_encoder"].resolve(), torch_dtype(self.dtype))

    def _call(self, prompts: list[str], generators: list[torch.Generator], height: int, width: int,
              tokens: torch.Tensor | None, ip_scale: float) -> list[Image]:
        kwargs: dict[str, Any] = {}
        if self.true_cfg > 1:
            kwargs = {"true_cfg_scale": self.true_cfg, "negative_prompt": [self.negative_prompt] * len(prompts)}
        if self._ip is None:
            return self._pipe_call(prompts, generators, height, width, kwargs)
        # Once loaded, the IP attention processors need tokens: none given = zero tokens at scale 0.
        ip = self._ip
        negative = ip.uncond_tokens().expand(len(prompts), -1, -1)
        positive = tokens.to(negative.device) if tokens is not None else negative.new_zeros(negative.shape)
        ip.set_scale(ip_scale if tokens is not None else 0.0)
        kwargs.update(ip_adapter_image_embeds=[ip.as_embeds(positive)],
                      negative_ip_adapter_image_embeds=[ip.as_embeds(negative)])
        with ip.injecting():
            return self._pipe_call(prompts, generators, height, width, kwargs)

    def _pipe_call(self, prompts: list[str], generators: list[Any], height: int, width: int,
                   kwargs: dict[str, Any]) -> list[Image]:
        return self.pipeline(prompt=prompts, height=height, width=width, num_inference_steps=self.steps,
                             guidance_scale=self.guidance, generator=generators,
                             max_sequence_length=self.max_sequence_length, output_type="pil", **kwargs).images

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Per-token T5 states (B, max_sequence_length, 4096): what the transformer attends to."""
        pipe = self.pipeline
        embeds = pipe.encode_prompt(prompt=list(prompts), prompt_2=None, device=pipe._execution_device,
                                    max_sequence_length=self.max_sequence_length)[0]
        return embeds.float()

