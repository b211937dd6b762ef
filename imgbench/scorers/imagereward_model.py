"""ImageReward's network (Xu et al., NeurIPS 2023) on transformers' BLIP classes, loading `ImageReward.pt` as released.

Upstream (zai-org/ImageReward, `ImageReward/ImageReward.py` + vendored BLIP): a BLIP ViT-L/16 image
encoder (224 px, LayerNorm eps 1e-6), a BERT-base text encoder with cross-attention to the image tokens
in every layer (`med_config.json`, vocab 30524 = bert-base-uncased + [DEC] + [ENC]), and an MLP
768→1024→128→64→16→1 on the text encoder's [CLS] state; the reward is (mlp − 0.16717362830052426) /
1.0333394966054072. The vendored BLIP imports helpers removed in transformers 5 (zai-org/ImageReward#122),
so the same tensors are loaded into `BlipVisionModel` and `BlipTextModel` (whose layers are BLIP's `med.py`
with the same parameter names) by the renaming below; the MLP keeps upstream's `layers.N` indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgbench.errors import UserError

REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TEXT_TOKENS = 35
"""ImageReward tokenises prompts with padding='max_length', truncation=True, max_length=35."""


@dataclass
class ImageRewardParts:
    vision: Any
    """transformers BlipVisionModel (BLIP ViT)."""
    text: Any
    """transformers BlipTextModel with cross-attention (BLIP med BertModel, no pooler)."""
    head: Any
    """nn.Sequential MLP (same layout as the aesthetic predictor's)."""
    tokenizer: Any
    image_size: int = 224


def configs(med_config: dict[str, Any], image_size: int = 224) -> tuple[Any, Any]:
    """BLIP 'large' ViT (create_vit('large', 224)) and the med BERT config with encoder_width = 1024."""
    from transformers import BlipTextConfig, BlipVisionConfig

    vision = BlipVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=image_size, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-6)
    text = BlipTextConfig(
        vocab_size=med_config["vocab_size"], hidden_size=med_config["hidden_size"], encoder_hidden_size=1024,
        intermediate_size=med_config["intermediate_size"], num_hidden_layers=med_config["num_hidden_layers"],
        num_attention_heads=med_config["num_attention_heads"],
        max_position_embeddings=med_config["max_position_embeddings"], hidden_act=med_config["hidden_act"],
        layer_norm_eps=med_config["layer_norm_eps"], pad_token_id=med_config.get("pad_token_id", 0),
        is_decoder=True)  # is_decoder builds the cross-attention layers; forward runs bidirectionally
    return vision, text


_VIT = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.qkv": "self_attn.qkv",
        "attn.proj": "self_attn.projection", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_UNUSED = ("blip.vision_proj.", "blip.text_proj.", "blip.text_encoder.embeddings.position_ids")


def split_state_dict(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """ImageReward.pt → (BlipVisionModel, BlipTextModel, MLP) state dicts. Unknown keys are an error."""
    vision: dict[str, Any] = {}
    text: dict[str, Any] = {}
    head: dict[str, Any] = {}
    renames = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
               "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
               "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
               "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}
    for key, tensor in state.items():
        if key.startswith(_UNUSED):
            continue
        if key.startswith("blip.visual_encoder."):
            rest = key.removeprefix("blip.visual_encoder.")
            if rest in renames:
                vision[renames[rest]] = tensor
            elif rest.startswith("blocks."):
                _, index, tail = rest.split(".", 2)
                module, kind = tail.rsplit(".", 1)
                if module not in _VIT:
                    raise UserError(f"unexpected ImageReward tensor {key!r}.")
                vision[f"encoder.layers.{index}.{_VIT[module]}.{kind}"] = tensor
            else:
                raise UserError(f"unexpected ImageReward tensor {key!r}.")
        elif key.startswith("blip.text_encoder."):
            text[key.removeprefix("blip.text_encoder.")] = tensor
        elif key.startswith("mlp.layers."):
            head[key.removeprefix("mlp.layers.")] = tensor
        else:
            raise UserError(f"unexpected ImageReward tensor {key!r}.")
    return vision, text, head


def build(state: dict[str, Any], vision_cfg: Any, text_cfg: Any, tokenizer: Any, dtype: Any,
          device: str) -> ImageRewardParts:
    """Instantiate the three modules for these configs and load the released tensors strictly."""
    from transformers import BlipTextModel, BlipVisionModel

    from imgbench.scorers.aesthetic import aesthetic_head

    vision, text = BlipVisionModel(vision_cfg), BlipTextModel(text_cfg, add_pooling_layer=False)
    head = aesthetic_head(text_cfg.hidden_size)
    parts = split_state_dict(state)
    for module, tensors, label in ((vision, parts[0], "image encoder"), (text, parts[1], "text encoder"),
                                   (head, parts[2], "MLP")):
        result = module.load_state_dict(tensors, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise UserError(f"ImageReward checkpoint does not fit the {label}: missing {result.missing_keys[:5]}, "
                            f"unexpected {result.unexpected_keys[:5]}.")
    return ImageRewardParts(vision=vision.to(device, dtype).eval(), text=text.to(device, dtype).eval(),
                            head=head.to(device).float().eval(), tokenizer=tokenizer,
                            image_size=vision_cfg.image_size)
