"""The shapes model's parts, built from the same library classes real models use.

A word-level tokenizer (transformers format), a small `CLIPTextModel`, and a small diffusers
`UNet2DConditionModel` working on a packed "latent": the 32×32×3 image space-to-depth packed into
16×16×12 (`pixel_unshuffle`, lossless). Packing made a 4.8M-parameter UNet train faster per step
(1.17 s at batch 64 on one core) than the 1.5M pixel-space UNet of the feasibility probe (1.72 s),
because the full-resolution convolutions are what cost on a CPU. Cross-attention sits at 8×8 and
4×4 only, and the pooled caption vector also enters the time embedding (`class_embed_type=projection`).
torch, diffusers and transformers are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgbench.worlds.shapes.grammar import vocabulary

SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")
# eos id 3, not 2: CLIPTextModel treats eos_token_id == 2 as a legacy config and pools at argmax(input_ids).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MAX_LENGTH = 16
PACK = 2

TEXT_CONFIG: dict[str, Any] = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "max_position_embeddings": MAX_LENGTH}
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 32 // PACK, "in_channels": 3 * PACK * PACK, "out_channels": 3 * PACK * PACK,
    "block_out_channels": [64, 64, 128], "layers_per_block": 1, "norm_num_groups": 8, "attention_head_dim": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 128, "class_embed_type": "projection", "projection_class_embeddings_input_dim": 128,
}
SCHEDULER_CONFIG: dict[str, Any] = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                    "prediction_type": "v_prediction", "clip_sample": True}


def build_tokenizer() -> Any:
    """A word-level `PreTrainedTokenizerFast` over the grammar's vocabulary: [BOS] words [EOS] [PAD]..."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + vocabulary())}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.post_processor = TemplateProcessing(single="[BOS] $A [EOS]",
                                                special_tokens=[("[BOS]", BOS_ID), ("[EOS]", EOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", unk_token="[UNK]", model_max_length=MAX_LENGTH)


def load_tokenizer(folder: str | Path) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def build_text_encoder(vocab_size: int, overrides: dict[str, Any] | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                            **{**TEXT_CONFIG, **(overrides or {})})
    return CLIPTextModel(config)


def build_unet(text_width: int, overrides: dict[str, Any] | None = None) -> Any:
    """The UNet, its cross-attention and pooled-caption projection sized to the text encoder's width."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**{**UNET_CONFIG, "cross_attention_dim": text_width,
                                   "projection_class_embeddings_input_dim": text_width, **(overrides or {})})


def build_train_scheduler() -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULER_CONFIG)


def build_sampler(config: dict[str, Any] | None = None) -> Any:
    """DDIM with trailing timestep spacing, so few steps still start from pure noise."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**{**SCHEDULER_CONFIG, **(config or {}), "timestep_spacing": "trailing"})


def load_sampler(folder: str | Path) -> Any:
    """The sampler a weights folder was exported with (its scheduler/ config, diffusers' private keys dropped)."""
    import json

    config = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
    return build_sampler({k: v for k, v in config.items() if not k.startswith("_")})


def tokenize(tokenizer: Any, texts: list[str]) -> Any:
    """input_ids (batch, MAX_LENGTH): lower-cased words, [BOS] ... [EOS], padded."""
    from imgbench.worlds.shapes.grammar import words_of

    cleaned = [" ".join(words_of(t)) for t in texts]
    return tokenizer(cleaned, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                     return_tensors="pt").input_ids


def encode(text_encoder: Any, input_ids: Any) -> tuple[Any, Any]:
    """(token states for cross-attention, pooled [EOS] state for the time embedding)."""
    out = text_encoder(input_ids=input_ids)
    return out.last_hidden_state, out.pooler_output


def pack(images: Any) -> Any:
    """(B, 3, 32, 32) in [-1, 1] → (B, 12, 16, 16)."""
    import torch.nn.functional as F

    return F.pixel_unshuffle(images, PACK)


def unpack(latents: Any) -> Any:
    import torch.nn.functional as F

    return F.pixel_shuffle(latents, PACK)


def to_images(latents: Any) -> list[Any]:
    """Packed latents (B, 12, 16, 16) → 32×32 RGB PIL images (clamped to [-1, 1], rounded to bytes)."""
    import numpy as np
    import torch
    from PIL import Image

    pixels = unpack(latents).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).cpu().numpy())) for p in pixels]
