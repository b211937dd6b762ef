"""diffusers pipelines that accept one set of IP-Adapter embeddings per prompt.

The stock `prepare_ip_adapter_image_embeds` of the SD, SDXL and FLUX pipelines repeats the
given embeddings batch-size times: it assumes one reference image for the whole batch, so
per-prompt rows would be mixed into every prompt's IP attention. IMG conditions every request
on its own tokens, so here given embeddings (already one row per image, negatives first when
the pipeline runs classifier-free guidance) pass through unchanged. Imported only when a
model loads (it imports diffusers).
"""

from __future__ import annotations

from typing import Any

from diffusers import FluxPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline


class PerRequestIPEmbeds:
    """Mixin: `ip_adapter_image_embeds` rows are per image; the pipeline must not repeat them."""

    def prepare_ip_adapter_image_embeds(self, ip_adapter_image: Any, ip_adapter_image_embeds: Any, device: Any,
                                        num_images_per_prompt: int, *args: Any) -> Any:
        if ip_adapter_image_embeds is None:
            return super().prepare_ip_adapter_image_embeds(  # type: ignore[misc]
                ip_adapter_image, None, device, num_images_per_prompt, *args)
        cfg = bool(args[0]) if args else False  # SD/SDXL pass do_classifier_free_guidance; FLUX has none
        rows = num_images_per_prompt * (2 if cfg else 1)
        for embeds in ip_adapter_image_embeds:
            if embeds.shape[0] != rows:
                order = ", negatives first" if cfg else ""
                raise ValueError(f"expected {rows} IP embedding rows (one per image{order}), got {embeds.shape[0]}")
        return [embeds.to(device) for embeds in ip_adapter_image_embeds]


class PerRequestIPStableDiffusionPipeline(PerRequestIPEmbeds, StableDiffusionPipeline):
    """StableDiffusionPipeline with per-image IP embeddings."""


class PerRequestIPStableDiffusionXLPipeline(PerRequestIPEmbeds, StableDiffusionXLPipeline):
    """StableDiffusionXLPipeline with per-image IP embeddings."""


class PerRequestIPFluxPipeline(PerRequestIPEmbeds, FluxPipeline):
    """FluxPipeline with per-image IP embeddings (negatives go separately as negative_ip_adapter_image_embeds)."""
