"""OpenCLIP ViT checkpoints in transformers' CLIPModel: an exact re-labelling of the same tensors.

HPSv2 ships open_clip state dicts (ViT-H-14). Rather than depend on open_clip (whose factory also
downloads the laion2B base weights even when a full checkpoint is given, tgxs002/HPSv2#16), the tensors
are renamed into transformers' CLIP classes, which compute the same function: pre-LN ViT with class
token, ln_pre → blocks → ln_post on the class token → projection; causal text transformer pooled at
the highest token id (EOT) after ln_final → projection; GELU everywhere (ViT-H-14 is not a QuickGELU
model), LayerNorm eps 1e-5. The only structural change is splitting nn.MultiheadAttention's packed
in_proj into q/k/v. tests/test_scorers_openclip.py checks equality against open_clip itself.
"""

from __future__ import annotations

from typing import Any

from imgbench.errors import UserError

VIT_H_14 = {"embed_dim": 1024,
            "vision": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
            "text": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}
"""open_clip's model_configs/ViT-H-14.json (also vendored by HPSv2)."""


def clip_config(arch: dict[str, Any]) -> Any:
    """A transformers CLIPConfig computing the same function as an open_clip ViT architecture dict."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    vision, text = arch["vision"], arch["text"]
    vision_cfg = CLIPVisionConfig(
        hidden_size=vision["width"], intermediate_size=int(vision["width"] * vision.get("mlp_ratio", 4.0)),
        num_hidden_layers=vision["layers"], num_attention_heads=vision["width"] // vision["head_width"],
        image_size=vision["image_size"], patch_size=vision["patch_size"], hidden_act="gelu", layer_norm_eps=1e-5,
        projection_dim=arch["embed_dim"])
    text_cfg = CLIPTextConfig(
        vocab_size=text["vocab_size"], hidden_size=text["width"], intermediate_size=int(text["width"] * 4),
        num_hidden_layers=text["layers"], num_attention_heads=text["heads"],
        max_position_embeddings=text["context_length"], hidden_act="gelu", layer_norm_eps=1e-5,
        projection_dim=arch["embed_dim"],
        # eos_token_id=2 selects transformers' argmax-of-token-id pooling, which is open_clip's rule.
        eos_token_id=2, bos_token_id=0, pad_token_id=1)
    return CLIPConfig(text_config=text_cfg.to_dict(), vision_config=vision_cfg.to_dict(),
                      projection_dim=arch["embed_dim"])


_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
          "attn.out_proj": "self_attn.out_proj"}


def _blocks(state: dict[str, Any], source: str, target: str, out: dict[str, Any]) -> None:
    prefix = f"{source}transformer.resblocks."
    for key, tensor in state.items():
        if not key.startswith(prefix):
            continue
        index, rest = key[len(prefix):].split(".", 1)
        base = f"{target}encoder.layers.{index}."
        if rest.startswith("attn.in_proj_"):
            kind = rest.rsplit("_", 1)[-1]  # weight | bias
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True):
                out[f"{base}self_attn.{name}.{kind}"] = part
            continue
        module, kind = rest.rsplit(".", 1)
        if module not in _BLOCK:
            raise UserError(f"unexpected open_clip tensor {key!r}: not a ViT-H/L-style checkpoint.")
        out[f"{base}{_BLOCK[module]}.{kind}"] = tensor


def convert_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """open_clip CLIP state dict → transformers CLIPModel state dict (same tensors, new names)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    out: dict[str, Any] = {
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].t().contiguous(),
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].t().contiguous(),
        "logit_scale": state["logit_scale"].reshape(()),
    }
    _blocks(state, "visual.", "vision_model.", out)
    _blocks(state, "", "text_model.", out)
    return out


def load_openclip_into_hf(state: dict[str, Any], arch: dict[str, Any], dtype: Any) -> Any:
    """Build a CLIPModel for `arch` and load the converted tensors strictly (no key may be missing or extra)."""
    import torch
    from transformers import CLIPModel

    with torch.device("meta"):
        model = CLIPModel(clip_config(arch))
    converted = convert_state_dict(state)
    expected = set(model.state_dict())
    missing, extra = expected - set(converted), set(converted) - expected
    if missing or extra:
        raise UserError(f"open_clip checkpoint does not match {arch}: missing {sorted(missing)[:5]}, "
                        f"unexpected {sorted(extra)[:5]}.")
    model.load_state_dict({k: v.to(dtype) for k, v in converted.items()}, strict=True, assign=True)
    model.text_model.embeddings.position_ids = torch.arange(arch["text"]["context_length"]).unsqueeze(0)
    n_patches = (arch["vision"]["image_size"] // arch["vision"]["patch_size"]) ** 2
    model.vision_model.embeddings.position_ids = torch.arange(n_patches + 1).unsqueeze(0)
    return model.eval()
