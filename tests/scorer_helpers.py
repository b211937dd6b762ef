"""Tiny real backbones and shared contract checks for the scorer tests (no hub, no weights)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.records import Prompt

FIXTURES = Path(__file__).parent / "fixtures" / "scorers"
TEXTS = ["a photo of a red cat", "two dogs on the left", "a blue figure", "a green cat and a dog",
         "the red dog is right of the blue cat"]


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """Build a randomly initialised module without touching the caller's global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def tiny_qwen_vl(seed: int = 0) -> tuple[Any, Any]:
    """(Qwen2_5_VLForConditionalGeneration at a tiny config, its processor from the local fixture).

    Shared by the VQAScore tests and the IMG MLLM tests (imgbench.mllm.hf.QwenVLMLLM).
    """
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(FIXTURES / "qwen2_5_vl_processor")
    ids = processor.tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(processor.tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 512, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                     "bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>")},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
                       "fullatt_block_indexes": [1]},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    return seeded(seed, lambda: Qwen2_5_VLForConditionalGeneration(config).eval()), processor


def images(n: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def prompts(texts: Sequence[str] = TEXTS) -> list[Prompt]:
    return [Prompt(id=str(i), text=t) for i, t in enumerate(texts)]


def clip_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(FIXTURES / "clip_tokenizer")


def tiny_clip_model(seed: int = 0, image_size: int = 32) -> Any:
    from transformers import CLIPConfig, CLIPModel

    from imgbench.models.tiny import clip_tower_configs

    text, vision = clip_tower_configs(clip_tokenizer(), image_size, patch_size=8, intermediate_size=64, layers=2,
                                      heads=2)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    return seeded(seed, lambda: CLIPModel(config).eval())


def tiny_clip_parts(seed: int = 0, resize: str = "crop", image_size: int = 32) -> Any:
    from imgbench.scorers.clip import ClipParts

    return ClipParts(model=tiny_clip_model(seed, image_size), tokenizer=clip_tokenizer(), image_size=image_size,
                     resize=resize)


def plain_pixels(imgs: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> Any:
    """Normalised pixels for images already at the model's input size (the resize is then a no-op)."""
    import torch

    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in imgs])
    pixels = torch.from_numpy(array).permute(0, 3, 1, 2)
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def check_contract(scorer: Any, imgs: Sequence[Image.Image], records: Sequence[Prompt], tol: float = 1e-5) -> list:
    """Range, determinism and batch invariance; returns the batch results."""
    batch = scorer.score(imgs, records)
    assert len(batch) == len(imgs)
    low, high = scorer.value_range
    for result in batch:
        assert math.isfinite(result.value)
        assert low <= result.value <= high, (result.value, scorer.value_range)
    again = scorer.score(imgs, records)
    assert [r.value for r in again] == [r.value for r in batch], "not deterministic"
    single = [scorer.score([im], [p])[0].value for im, p in zip(imgs, records, strict=True)]
    np.testing.assert_allclose(single, [r.value for r in batch], rtol=tol, atol=tol, err_msg="batch != one at a time")
    return batch
