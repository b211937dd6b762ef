"""PickScore: exp(logit_scale) · cos(E_image, E_text) with the PickScore_v1 CLIP-H (Kirstain et al., NeurIPS 2023).

Model `yuvalkirstain/PickScore_v1` (OpenCLIP ViT-H-14 fine-tuned on Pick-a-Pic human preferences) with
the processor of `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`, as the PickScore README loads them. The value is
the logit PickScore's README computes before its softmax: logit_scale.exp() (≈100) times the cosine, so
typical values are 18–23. It is a *preference* score, meaningful for comparing images of the same prompt;
the softmax over a prompt's candidates gives preference probabilities. Prompts over 77 tokens are
truncated and reported, as in clipscore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.scorers import clip
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_snapshot


class PickScore(BackboneScorer):
    """exp(logit_scale) · cos(image, text) of PickScore_v1; CLIP's logit scale is at most 100."""

    name = "pickscore"
    version = 1
    value_range = (-100.0, 100.0)
    higher_is_better = True

    def __init__(self, model: str = "yuvalkirstain/PickScore_v1",
                 processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", revision: str | None = None,
                 long_prompts: str = "truncate", backbone: Any = None, device: str | None = None,
                 dtype: str = "fp32") -> None:
        self.model_id, self.processor_id, self.revision = model, processor, revision
        super().__init__(backbone, device, dtype, model=model, processor=processor, revision=revision,
                         long_prompts=long_prompts)

    def resolve_weights(self) -> dict[str, Any]:
        self._model_files = hub_snapshot(self.model_id, self.name, ["config.json"], clip.WEIGHT_FILES, self.revision)
        self._processor_files = hub_snapshot(self.processor_id, self.name, clip.PROCESSOR_FILES)
        return {"model": self._model_files.identity(), "processor": self._processor_files.identity()}

    def load_backbone(self) -> clip.ClipParts:
        return clip.load_clip(str(self._model_files.path), self.device, torch_dtype(self.dtype),
                              processor_folder=str(self._processor_files.path))

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        image, text, facts = clip.embed(self.backbone, images, [p.text for p in prompts], self.device,
                                        self.params["long_prompts"], self.name)
        scale = float(self.backbone.model.logit_scale.detach().float().exp())
        cosine = (image * text).sum(dim=-1)
        return [ScoreResult(value=scale * c, details={"cosine": c, "logit_scale_exp": scale, **f})
                for c, f in zip(cosine.tolist(), facts, strict=True)]
