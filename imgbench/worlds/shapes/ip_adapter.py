"""IP-Adapter for the shapes UNet (Ye et al., 2023, §3.2), through diffusers' own IP-Adapter machinery.

The adapter is stored in the official IP-Adapter checkpoint layout — {"image_proj": {proj, norm},
"ip_adapter": {"1.to_k_ip.weight", ...}} — and attached with `UNet2DConditionModel._load_ip_adapter_weights`,
the code path `pipeline.load_ip_adapter` takes for SDXL: an `ImageProjection` turns the image encoder's
embedding into 4 tokens, and `IPAdapterAttnProcessor2_0` adds a decoupled cross-attention over them,
weighted by the IP scale. The image encoder is the vision tower of the world's contrastive CLIP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NUM_TOKENS = 4


def fresh_state_dict(unet: Any, image_embed_dim: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """A new adapter in the official layout (what training starts from): a random projection, and each
    to_k_ip / to_v_ip a copy of its layer's text to_k / to_v, as IP-Adapter's training initialises them
    (Ye et al., 2023): image tokens start out read like caption tokens instead of as noise."""
    import torch

    cross = unet.config.cross_attention_dim
    gen = torch.Generator().manual_seed(seed)
    proj = torch.empty(cross * NUM_TOKENS, image_embed_dim)
    torch.nn.init.kaiming_uniform_(proj, a=5 ** 0.5, generator=gen)
    image_proj = {"proj.weight": proj, "proj.bias": torch.zeros(cross * NUM_TOKENS),
                  "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross)}
    ip_layers: dict[str, Any] = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        attention = unet.get_submodule(name.removesuffix(".processor"))
        ip_layers[f"{key_id}.to_k_ip.weight"] = attention.to_k.weight.detach().clone()
        ip_layers[f"{key_id}.to_v_ip.weight"] = attention.to_v.weight.detach().clone()
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_layers}


def attach(unet: Any, state_dict: dict[str, dict[str, Any]]) -> None:
    """Load an official-layout adapter into the UNet in place (diffusers' loader; sets encoder_hid_proj)."""
    unet._load_ip_adapter_weights([state_dict], low_cpu_mem_usage=False)


def state_dict_of(unet: Any) -> dict[str, dict[str, Any]]:
    """The attached adapter back in the official layout (for saving)."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    projection = unet.encoder_hid_proj.image_projection_layers[0]
    image_proj = {f"{k}": v.detach().clone() for k, v in projection.image_embeds.state_dict(prefix="proj.").items()}
    image_proj.update({k: v.detach().clone() for k, v in projection.norm.state_dict(prefix="norm.").items()})
    ip_layers: dict[str, Any] = {}
    key_id = 1
    for name, processor in unet.attn_processors.items():
        if name.endswith("attn1.processor"):
            continue
        if not isinstance(processor, IPAdapterAttnProcessor2_0):
            raise RuntimeError(f"{name} has no IP-Adapter processor; attach() an adapter first")
        ip_layers[f"{key_id}.to_k_ip.weight"] = processor.to_k_ip[0].weight.detach().clone()
        ip_layers[f"{key_id}.to_v_ip.weight"] = processor.to_v_ip[0].weight.detach().clone()
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_layers}


def set_scale(unet: Any, scale: float) -> None:
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    for processor in unet.attn_processors.values():
        if isinstance(processor, IPAdapterAttnProcessor2_0):
            processor.scale = [float(scale)]


def project(unet: Any, image_embeds: Any) -> Any:
    """Image-encoder embeddings (B, D) → IP tokens (B, NUM_TOKENS, cross_attention_dim)."""
    return unet.encoder_hid_proj.image_projection_layers[0](image_embeds)


def ip_kwargs(tokens: Any) -> dict[str, Any]:
    """UNet kwargs that feed precomputed IP tokens, bypassing the projection (what IMG's aligner edits)."""
    return {"added_cond_kwargs": {"image_embeds": [tokens]}}


@contextmanager
def given_tokens(unet: Any) -> Iterator[None]:
    """While active, `image_embeds` are used as IP tokens as they are (the projection is skipped)."""
    import torch

    saved = unet.encoder_hid_proj
    unet.encoder_hid_proj = torch.nn.Identity()
    try:
        yield
    finally:
        unet.encoder_hid_proj = saved


def flatten(state_dict: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Official layout → flat safetensors keys ('image_proj.proj.weight', 'ip_adapter.1.to_k_ip.weight')."""
    return {f"{group}.{key}": value.contiguous() for group, part in state_dict.items() for key, value in part.items()}


def unflatten(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, rest = key.split(".", 1)
        out[group][rest] = value
    return out
