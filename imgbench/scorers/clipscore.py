"""CLIPScore: 100 · max(cos(E_image, E_text), 0) with a CLIP dual encoder (Hessel et al., EMNLP 2021).

Scale: the torchmetrics convention (w = 100, no 2.5 factor), so values lie in [0, 100]; Stable-Diffusion
class images typically score 25–35 with OpenAI ViT-L/14 (the default). Any transformers-format CLIP repo
works through `model`: OpenAI's (openai/clip-vit-*) and OpenCLIP's released conversions (e.g.
laion/CLIP-ViT-H-14-laion2B-s32B-b79K, which is open_clip's ViT-H-14 `laion2b_s32b_b79k`); scores from
different encoders are different scales and live under different cache keys.

Prompts longer than the text window (77 tokens) are truncated to BOS + 75 tokens + EOS, as CLIP was
trained, and every result says so (`truncated`, `text_tokens`); `long_prompts=error` refuses them instead.
Measures: prompt–image agreement in CLIP's embedding space (coarse; weak on counting and relations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.scorers import clip
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_snapshot


class CLIPScore(BackboneScorer):
    """100 · max(cos, 0) between L2-normalised CLIP image and text embeddings, in [0, 100]."""

    name = "clipscore"
    version = 1
    value_range = (0.0, 100.0)
    higher_is_better = True

    def __init__(self, model: str = "openai/clip-vit-large-patch14", revision: str | None = None,
                 long_prompts: str = "truncate", backbone: Any = None, device: str | None = None,
                 dtype: str = "fp32") -> None:
        self.model_id, self.revision = model, revision
        super().__init__(backbone, device, dtype, model=model, revision=revision, long_prompts=long_prompts)

    def resolve_weights(self) -> dict[str, Any]:
        self._files = hub_snapshot(self.model_id, self.name, ["config.json", *clip.PROCESSOR_FILES],
                                   clip.WEIGHT_FILES, self.revision)
        return self._files.identity()

    def load_backbone(self) -> clip.ClipParts:
        return clip.load_clip(str(self._files.path), self.device, torch_dtype(self.dtype))

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        image, text, facts = clip.embed(self.backbone, images, [p.text for p in prompts], self.device,
                                        self.params["long_prompts"], self.name)
        cosine = (image * text).sum(dim=-1)
        values = 100.0 * cosine.clamp(min=0.0)
        return [ScoreResult(value=float(v), details={"cosine": float(c), **f})
                for v, c, f in zip(values.tolist(), cosine.tolist(), facts, strict=True)]
