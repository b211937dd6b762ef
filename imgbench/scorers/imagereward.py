"""ImageReward: a BLIP-based reward model trained on 137k expert comparisons (Xu et al., NeurIPS 2023).

value = (MLP(BERT_cross-attn(prompt, BLIP-ViT(image))[CLS]) − 0.16717) / 1.03334, the z-normalised reward
that `ImageReward.load("ImageReward-v1.0").score(prompt, image)` returns (≈ N(0, 1) over its training
data, typically −2…+2). A *preference* score: compare images of the same prompt. Weights: `THUDM/ImageReward`
(`ImageReward.pt`, `med_config.json`), tokenizer `google-bert/bert-base-uncased` plus ImageReward's two added
tokens. Prompts are cut at 35 tokens as upstream does, and the cut is reported (`truncated`). Image recipe:
short side 224 (bicubic), centre crop, OpenAI CLIP mean/std — upstream's `_transform(224)`.
Architecture and loading: imgbench/scorers/imagereward_model.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.scorers import clip
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_snapshot
from imgbench.scorers.imagereward_model import (
    MAX_TEXT_TOKENS,
    REWARD_MEAN,
    REWARD_STD,
    ImageRewardParts,
    build,
    configs,
)


def imagereward_tokenizer(folder: str) -> Any:
    """bert-base-uncased with ImageReward's additions ([DEC] as bos, [ENC]), giving its 30524-token vocabulary."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    return tokenizer


class ImageReward(BackboneScorer):
    """Z-normalised ImageReward reward (unbounded; ≈ N(0, 1) on its training distribution)."""

    name = "imagereward"
    version = 1
    value_range = (float("-inf"), float("inf"))
    higher_is_better = True

    def __init__(self, repo: str = "THUDM/ImageReward", tokenizer: str = "google-bert/bert-base-uncased",
                 revision: str | None = None, backbone: Any = None, device: str | None = None,
                 dtype: str = "fp32") -> None:
        self.repo, self.tokenizer_id, self.revision = repo, tokenizer, revision
        super().__init__(backbone, device, dtype, repo=repo, tokenizer=tokenizer, revision=revision)

    def resolve_weights(self) -> dict[str, Any]:
        self._files = hub_snapshot(self.repo, self.name, ["med_config.json"], ("ImageReward.pt",), self.revision)
        self._tokenizer_files = hub_snapshot(self.tokenizer_id, self.name,
                                             ["vocab.txt", "tokenizer.json", "tokenizer_config.json"])
        return {"model": self._files.identity(), "tokenizer": self._tokenizer_files.identity()}

    def load_backbone(self) -> ImageRewardParts:
        import torch

        state = torch.load(self._files.path / "ImageReward.pt", map_location="cpu", weights_only=True)
        med_config = json.loads((self._files.path / "med_config.json").read_text())
        vision_cfg, text_cfg = configs(med_config)
        return build(state, vision_cfg, text_cfg, imagereward_tokenizer(str(self._tokenizer_files.path)),
                     torch_dtype(self.dtype), self.device)

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        import torch

        parts: ImageRewardParts = self.backbone
        dtype = next(parts.vision.parameters()).dtype
        pixels = clip.pixel_values(images, parts.image_size, clip.OPENAI_MEAN, clip.OPENAI_STD)
        tokens, facts = clip.tokenize(parts.tokenizer, [p.text for p in prompts], MAX_TEXT_TOKENS, "truncate",
                                      self.name)
        with torch.inference_mode():
            image_embeds = parts.vision(pixel_values=pixels.to(self.device, dtype)).last_hidden_state
            image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
            text = parts.text(input_ids=tokens["input_ids"].to(self.device),
                              attention_mask=tokens["attention_mask"].to(self.device),
                              encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask)
            raw = parts.head(text.last_hidden_state[:, 0, :].float()).squeeze(-1)
        rewards = (raw - REWARD_MEAN) / REWARD_STD
        return [ScoreResult(value=float(r), details=dict(f)) for r, f in zip(rewards.tolist(), facts, strict=True)]
