"""ImageReward on a tiny BLIP (transformers classes at a tiny config) and an upstream-named checkpoint."""

from __future__ import annotations

import numpy as np
import torch
from scorer_helpers import FIXTURES, check_contract, images, plain_pixels, prompts, seeded

from imgbench.scorers.aesthetic import aesthetic_head
from imgbench.scorers.clip import OPENAI_MEAN, OPENAI_STD
from imgbench.scorers.imagereward import ImageReward, imagereward_tokenizer
from imgbench.scorers.imagereward_model import ImageRewardParts, build


def tiny_configs():
    from transformers import BlipTextConfig, BlipVisionConfig

    tokenizer = imagereward_tokenizer(str(FIXTURES / "bert_tokenizer"))
    vision = BlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, layer_norm_eps=1e-6)
    text = BlipTextConfig(vocab_size=len(tokenizer), hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64, is_decoder=True)
    return vision, text, tokenizer


def tiny_parts(seed=0):
    from transformers import BlipTextModel, BlipVisionModel

    vision_cfg, text_cfg, tokenizer = tiny_configs()

    def make():
        parts = ImageRewardParts(vision=BlipVisionModel(vision_cfg).eval(),
                                 text=BlipTextModel(text_cfg, add_pooling_layer=False).eval(),
                                 head=aesthetic_head(32).eval(), tokenizer=tokenizer, image_size=32)
        for module in (parts.vision, parts.text, parts.head):
            for param in module.parameters():
                param.data.normal_(0, 0.2)
        return parts

    return seeded(seed, make)


def test_imagereward_value_range_batch_direction_and_recomputation():
    parts = tiny_parts()
    scorer = ImageReward(backbone=lambda: parts, device="cpu")
    imgs, records = images(5, seed=1), prompts()
    results = check_contract(scorer, imgs, records)
    # Recompute from the modules' raw outputs with ImageReward's own recipe (35 tokens, [CLS], z-normalise).
    tokens = parts.tokenizer([p.text for p in records], padding="max_length", truncation=True, max_length=35,
                             return_tensors="pt")
    with torch.no_grad():
        image_embeds = parts.vision(pixel_values=plain_pixels(imgs, OPENAI_MEAN, OPENAI_STD)).last_hidden_state
        cls = parts.text(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                         encoder_hidden_states=image_embeds,
                         encoder_attention_mask=torch.ones(image_embeds.shape[:2], dtype=torch.long)
                         ).last_hidden_state[:, 0]
        raw = parts.head(cls).squeeze(-1)
    expected = (raw - 0.16717362830052426) / 1.0333394966054072
    np.testing.assert_allclose([r.value for r in results], expected.numpy(), rtol=1e-5, atol=1e-5)
    # Direction: the reward is increasing in the MLP output (a positive std), so the ranking is the MLP's.
    assert list(np.argsort([r.value for r in results])) == list(np.argsort(raw.numpy()))
    # The image matters through cross-attention: another image, another reward.
    assert scorer.score(images(1, seed=9), records[:1])[0].value != results[0].value


def test_imagereward_reports_truncation_at_35_tokens():
    scorer = ImageReward(backbone=tiny_parts(), device="cpu")
    results = scorer.score(images(2), prompts([" ".join(["red cat"] * 30), "a cat"]))
    assert results[0].details["truncated"] and results[0].details["max_text_tokens"] == 35
    assert not results[1].details["truncated"]


def upstream_state_dict(parts):
    """Rename a tiny model's tensors to the names of ImageReward.pt (BLIP vit.py / med.py / MLP), written
    out here independently of the scorer's renaming table."""
    state = {}
    vision_names = {"embeddings.class_embedding": "cls_token", "embeddings.position_embedding": "pos_embed",
                    "embeddings.patch_embedding.weight": "patch_embed.proj.weight",
                    "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
                    "post_layernorm.weight": "norm.weight", "post_layernorm.bias": "norm.bias"}
    layer_names = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.qkv": "attn.qkv",
                   "self_attn.projection": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for key, tensor in parts.vision.state_dict().items():
        if key in vision_names:
            state[f"blip.visual_encoder.{vision_names[key]}"] = tensor
        else:
            _, _, index, tail = key.split(".", 3)
            module, kind = tail.rsplit(".", 1)
            state[f"blip.visual_encoder.blocks.{index}.{layer_names[module]}.{kind}"] = tensor
    for key, tensor in parts.text.state_dict().items():
        state[f"blip.text_encoder.{key}"] = tensor
    for key, tensor in parts.head.state_dict().items():
        state[f"mlp.layers.{key}"] = tensor
    state["blip.vision_proj.weight"] = torch.zeros(4, 32)  # present upstream, unused by the reward
    return state


def test_checkpoint_with_upstream_names_loads_and_scores_identically():
    parts = tiny_parts(seed=4)
    vision_cfg, text_cfg, tokenizer = tiny_configs()
    loaded = build(upstream_state_dict(parts), vision_cfg, text_cfg, tokenizer, torch.float32, "cpu")
    imgs, records = images(3, seed=2), prompts()[:3]
    np.testing.assert_allclose([r.value for r in ImageReward(backbone=loaded, device="cpu").score(imgs, records)],
                               [r.value for r in ImageReward(backbone=parts, device="cpu").score(imgs, records)],
                               atol=1e-6)


def test_checkpoint_with_unknown_tensors_is_refused():
    import pytest

    from imgbench.errors import UserError

    parts = tiny_parts()
    state = upstream_state_dict(parts)
    state["blip.itm_head.weight"] = torch.zeros(2, 32)
    vision_cfg, text_cfg, tokenizer = tiny_configs()
    with pytest.raises(UserError, match="itm_head"):
        build(state, vision_cfg, text_cfg, tokenizer, torch.float32, "cpu")
