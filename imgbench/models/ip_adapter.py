"""Token-level IP-Adapter control: encode images into IP tokens, and generate from given tokens.

diffusers applies the adapter's image projection *inside* the denoiser: the pipeline's
`ip_adapter_image_embeds` are image-*encoder* features, and `unet.encoder_hid_proj` (SDXL) or
`transformer.encoder_hid_proj` (FLUX) turns them into the tokens the IP attention layers read.
IMG works on the projected tokens (16 x 2048 for IP-Adapter Plus SDXL, 4 x 4096 for the XLabs
FLUX adapter; reference/checkpoint_formats.md), so:

- `encode` runs image encoder + projection ourselves and returns the projected tokens;
- `injecting()` temporarily replaces `encoder_hid_proj` with an identity projection, so tokens
  passed as `ip_adapter_image_embeds` reach the attention layers unchanged.

The unconditional (negative) tokens follow the official code: SDXL Plus encodes an all-zero
tensor *after* CLIP normalisation; the XLabs FLUX adapter encodes a black image.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from imgbench.models.hub import ResolvedSource

logger = logging.getLogger(__name__)


class IPAdapterTokens:
    """IP tokens in and out of one pipeline whose adapter is already loaded.

    `owner` is the module holding `encoder_hid_proj` (the UNet or the FLUX transformer);
    `features` picks what the projection consumes: 'penultimate' hidden states (Plus) or the
    pooled 'image_embeds'; `uncond` is 'zeros' (a zero tensor after normalisation) or 'black'.
    """

    def __init__(self, pipe: Any, owner: Any, features: str, uncond: str) -> None:
        self.pipe = pipe
        self.owner = owner
        self.features = features
        self.uncond = uncond
        self.projection = owner.encoder_hid_proj
        self._uncond_tokens: torch.Tensor | None = None
        self.token_shape = self._probe_shape()

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        encoder = self.pipe.image_encoder
        param = next(encoder.parameters())
        pixel_values = pixel_values.to(device=self.pipe._execution_device, dtype=param.dtype)
        if self.features == "penultimate":
            return encoder(pixel_values, output_hidden_states=True).hidden_states[-2]
        return encoder(pixel_values).image_embeds

    def _project(self, features: torch.Tensor) -> torch.Tensor:
        """(B, ...) encoder features → (B, n_tokens, dim) tokens through the adapter's own projection."""
        param = next(self.projection.parameters())
        projected = self.projection([features.to(device=param.device, dtype=param.dtype)[:, None]])[0]
        return projected[:, 0].float().to(self.pipe._execution_device)

    def _probe_shape(self) -> tuple[int, int]:
        import torch

        size = self.pipe.image_encoder.config.image_size
        with torch.inference_mode():
            tokens = self._project(self._features(torch.zeros(1, 3, size, size)))
        return int(tokens.shape[1]), int(tokens.shape[2])

    def pixel_values(self, images: Sequence[Image]) -> torch.Tensor:
        rgb = [image.convert("RGB") for image in images]
        return self.pipe.feature_extractor(rgb, return_tensors="pt").pixel_values

    def encode(self, images: Sequence[Image]) -> torch.Tensor:
        """Projected IP tokens of images: float32 (B, n_tokens, dim) on the execution device."""
        import torch

        with torch.inference_mode():
            return self._project(self._features(self.pixel_values(images)))

    def uncond_tokens(self) -> torch.Tensor:
        """The negative branch's tokens (1, n_tokens, dim), computed once."""
        if self._uncond_tokens is None:
            import numpy as np
            import torch
            from PIL import Image as PILImage

            size = self.pipe.image_encoder.config.image_size
            if self.uncond == "zeros":
                pixels = torch.zeros(1, 3, size, size)
            else:
                pixels = self.pixel_values([PILImage.fromarray(np.zeros((size, size, 3), dtype=np.uint8))])
            with torch.inference_mode():
                self._uncond_tokens = self._project(self._features(pixels))
        return self._uncond_tokens

    def set_scale(self, scale: float) -> None:
        self.pipe.set_ip_adapter_scale(float(scale))

    @contextlib.contextmanager
    def injecting(self) -> Iterator[None]:
        """Within this block the denoiser reads `ip_adapter_image_embeds` as already-projected tokens."""
        from diffusers.models.embeddings import MultiIPAdapterImageProjection
        from torch import nn

        self.owner.encoder_hid_proj = MultiIPAdapterImageProjection([nn.Identity()])
        try:
            yield
        finally:
            self.owner.encoder_hid_proj = self.projection

    def as_embeds(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, n, dim) tokens → the (B, 1, n, dim) layout diffusers uses for one image per prompt."""
        param = next(self.pipe.image_encoder.parameters())
        return tokens.to(device=self.pipe._execution_device, dtype=param.dtype)[:, None]


def load_image_encoder(resolved: ResolvedSource, subfolder: str, dtype: torch.dtype) -> Any:
    """The CLIP vision tower, loaded at the resolved revision (diffusers' loader would take main)."""
    from transformers import CLIPVisionModelWithProjection

    kwargs = resolved.load_kwargs()
    if subfolder:
        kwargs["subfolder"] = subfolder
    return CLIPVisionModelWithProjection.from_pretrained(resolved.location, **kwargs).to(dtype).eval()


def load_sdxl_plus(pipe: Any, resolved: ResolvedSource, subfolder: str, weight_name: str, encoder_folder: str,
                   dtype: torch.dtype) -> IPAdapterTokens:
    """IP-Adapter Plus on an SDXL (or SD) pipeline: ViT-H penultimate features → Resampler tokens."""
    pipe.register_modules(image_encoder=load_image_encoder(resolved, encoder_folder, dtype))
    pipe.load_ip_adapter(resolved.location, subfolder=subfolder, weight_name=weight_name, image_encoder_folder=None,
                         **resolved.load_kwargs())
    return IPAdapterTokens(pipe, pipe.unet, features="penultimate", uncond="zeros")


def load_flux_xlabs(pipe: Any, resolved: ResolvedSource, weight_name: str, encoder: ResolvedSource,
                    dtype: torch.dtype) -> IPAdapterTokens:
    """The XLabs FLUX adapter: CLIP-L image_embeds → Linear + LayerNorm tokens, read by the double blocks."""
    pipe.register_modules(image_encoder=load_image_encoder(encoder, "", dtype))
    pipe.load_ip_adapter(resolved.location, weight_name=weight_name, image_encoder_pretrained_model_name_or_path=None,
                         **resolved.load_kwargs())
    return IPAdapterTokens(pipe, pipe.transformer, features="image_embeds", uncond="black")
