"""CLIP plumbing shared by clipscore, pickscore, hpsv2, aesthetic and geneval's colour classifier.

Image preprocessing is written out here rather than taken from a transformers image processor, because
processors changed behaviour across releases (PIL vs torchvision "fast" resizing) and the upstream
scorers each fixed one recipe:
- "crop" (OpenAI CLIP, PickScore's CLIPProcessor, the aesthetic predictor, ImageReward): PIL bicubic
  resize of the short side to `size` (long side = int(size·long/short), torchvision's rule), centre crop
  (offset round((d − size)/2), torchvision's rule), scale to [0, 1], normalise.
- "pad" (HPSv2's `preprocess_val`, light_augmentation=True): image → tensor, bicubic antialiased resize of
  the *long* side to `size` (round(d·scale)), zero-pad to a square (before normalisation, so black), normalise.

Text is tokenised to the encoder's window; a prompt that does not fit is truncated (BOS … EOS kept)
and the truncation is reported per image (`text_tokens`, `truncated`), never silent (torchmetrics#2000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from imgbench.errors import UserError

if TYPE_CHECKING:
    import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROCESSOR_FILES = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "special_tokens_map.json"]


@dataclass
class ClipParts:
    """A CLIP dual encoder with its tokenizer and image recipe: the backbone of the CLIP-family scorers."""

    model: Any
    """transformers CLIPModel (vision_model, text_model, visual_projection, text_projection, logit_scale)."""
    tokenizer: Any
    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize: str = "crop"
    """'crop' (short side + centre crop) or 'pad' (long side + zero padding, HPSv2)."""


def _crop_resize(image: Image.Image, size: int) -> np.ndarray:
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    if new != image.size:
        image = image.resize(new, Image.BICUBIC)
    left = int(round((new[0] - size) / 2.0))
    top = int(round((new[1] - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0


def _pad_resize(image: Image.Image, size: int) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    height, width = pixels.shape[1:]
    scale = size / float(max(height, width))
    if scale != 1.0:
        new = (round(height * scale), round(width * scale))
        pixels = F.interpolate(pixels[None], size=new, mode="bicubic", align_corners=False, antialias=True)[0]
        pad_h, pad_w = size - new[0], size - new[1]
        pixels = F.pad(pixels, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    return pixels


def pixel_values(images: Sequence[Image.Image], size: int, mean: Sequence[float], std: Sequence[float],
                 resize: str = "crop") -> torch.Tensor:
    """(N, 3, size, size) float32 tensor following one of the two upstream recipes above."""
    import torch

    batch = []
    for image in images:
        image = image.convert("RGB")
        if resize == "crop":
            batch.append(torch.from_numpy(_crop_resize(image, size)).permute(2, 0, 1))
        elif resize == "pad":
            batch.append(_pad_resize(image, size))
        else:
            raise UserError(f"unknown resize recipe {resize!r}; use 'crop' or 'pad'.")
    pixels = torch.stack(batch)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int, long_prompts: str = "truncate",
             what: str = "scorer") -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Token ids padded to `max_length`, plus per-text facts (`text_tokens`, `truncated`).

    long_prompts='truncate' keeps the first max_length−2 content tokens (as CLIP was trained) and says
    so; 'error' refuses prompts that do not fit.
    """
    if long_prompts not in ("truncate", "error"):
        raise UserError(f"{what}: long_prompts must be 'truncate' or 'error', got {long_prompts!r}.")
    facts = []
    for text in texts:
        count = len(tokenizer(text, truncation=False)["input_ids"])
        truncated = count > max_length
        if truncated and long_prompts == "error":
            raise UserError(f"{what}: prompt {text[:60]!r}… has {count} tokens, more than the text encoder's "
                            f"{max_length}; shorten it or use long_prompts=truncate.")
        facts.append({"text_tokens": count, "max_text_tokens": max_length, "truncated": truncated})
    encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}, facts


def text_window(parts: ClipParts) -> int:
    return int(parts.model.config.text_config.max_position_embeddings)


def embed(parts: ClipParts, images: Sequence[Image.Image], texts: Sequence[str], device: str,
          long_prompts: str = "truncate", what: str = "scorer") -> tuple[Any, Any, list[dict[str, Any]]]:
    """L2-normalised image and text embeddings (N, D) in float32, and the tokenisation facts."""
    import torch

    model = parts.model
    dtype = next(model.parameters()).dtype
    pixels = pixel_values(images, parts.image_size, parts.mean, parts.std, parts.resize).to(device, dtype)
    tokens, facts = tokenize(parts.tokenizer, texts, text_window(parts), long_prompts, what)
    with torch.inference_mode():
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).float()
        text = model.text_projection(model.text_model(input_ids=tokens["input_ids"].to(device),
                                                      attention_mask=tokens["attention_mask"].to(device))
                                     .pooler_output).float()
    image = image / image.norm(dim=-1, keepdim=True)
    text = text / text.norm(dim=-1, keepdim=True)
    return image, text, facts


def image_embeddings(parts: ClipParts, images: Sequence[Image.Image], device: str) -> Any:
    """L2-normalised image embeddings (N, D) in float32."""
    import torch

    model = parts.model
    dtype = next(model.parameters()).dtype
    pixels = pixel_values(images, parts.image_size, parts.mean, parts.std, parts.resize).to(device, dtype)
    with torch.inference_mode():
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).float()
    return image / image.norm(dim=-1, keepdim=True)


def load_clip(folder: str, device: str, dtype: Any, processor_folder: str | None = None,
              resize: str = "crop") -> ClipParts:
    """A transformers-format CLIP (openai/*, laion/* OpenCLIP conversions, PickScore) from local folders.

    The tokenizer and image settings come from `processor_folder` (PickScore ships only weights and
    uses the laion ViT-H processor), else from the model folder.
    """
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(folder, dtype=dtype).to(device).eval()
    return with_processor(model, processor_folder or folder, resize)


def with_processor(model: Any, processor_folder: str, resize: str = "crop") -> ClipParts:
    """Attach the tokenizer and the image size/mean/std of a hub processor folder to a CLIP model."""
    import json
    from pathlib import Path

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(processor_folder)
    processor_file = Path(processor_folder) / "preprocessor_config.json"
    size, mean, std = 224, OPENAI_MEAN, OPENAI_STD
    if processor_file.is_file():
        config = json.loads(processor_file.read_text())
        crop = config.get("crop_size", size)
        size = int(crop["height"] if isinstance(crop, dict) else crop)
        mean, std = tuple(config.get("image_mean", mean)), tuple(config.get("image_std", std))
    return ClipParts(model=model, tokenizer=tokenizer, image_size=size, mean=mean, std=std, resize=resize)
