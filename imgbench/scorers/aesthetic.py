"""LAION improved aesthetic predictor: an MLP on L2-normalised OpenAI CLIP ViT-L/14 image embeddings.

christophschuhmann/improved-aesthetic-predictor, weights `sac+logos+ava1-l14-linearMSE.pth` (trained on
SAC + LAION-Logos + AVA ratings with MSE), mirrored on the hub as `trl-lib/ddpo-aesthetic-predictor`
(`aesthetic-model.pth`, the file TRL's DDPO example loads). The MLP is 768→1024→128→64→16→1 with dropout
and no activations (so in eval mode it is one affine map of the embedding); the output is a predicted
AVA-style rating, nominally 1–10, typically 4.5–6.5 for generated images. The prompt is ignored:
this measures visual appeal, not alignment. Image recipe: OpenAI CLIP's (short side 224, centre crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.errors import UserError
from imgbench.scorers import clip
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_file, hub_snapshot, local_file


def aesthetic_head(width: int = 768) -> Any:
    """The predictor's MLP with the upstream layer indices (layers.0/2/4/6/7), so its state dict loads as is."""
    from torch import nn

    return nn.Sequential(nn.Linear(width, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))


@dataclass
class AestheticParts:
    clip: clip.ClipParts
    head: Any
    """nn.Sequential from `aesthetic_head`."""


class Aesthetic(BackboneScorer):
    """Predicted aesthetic rating (AVA scale, nominally 1–10) of the image alone."""

    name = "aesthetic"
    version = 1
    value_range = (float("-inf"), float("inf"))
    higher_is_better = True

    def __init__(self, clip_model: str = "openai/clip-vit-large-patch14",
                 head_repo: str = "trl-lib/ddpo-aesthetic-predictor", head_file: str = "aesthetic-model.pth",
                 head_path: str | None = None, revision: str | None = None,
                 backbone: Any = None, device: str | None = None, dtype: str = "fp32") -> None:
        self.clip_id, self.head_repo, self.head_file, self.head_path, self.revision = (
            clip_model, head_repo, head_file, head_path, revision)
        super().__init__(backbone, device, dtype, clip_model=clip_model, head_repo=head_repo, head_file=head_file,
                         revision=revision)

    def resolve_weights(self) -> dict[str, Any]:
        self._clip_files = hub_snapshot(self.clip_id, self.name, ["config.json", *clip.PROCESSOR_FILES],
                                        clip.WEIGHT_FILES, self.revision)
        self._head = (local_file(self.head_path, self.name) if self.head_path
                      else hub_file(self.head_repo, self.head_file, self.name))
        return {"clip": self._clip_files.identity(), "head": self._head.identity()}

    def load_backbone(self) -> AestheticParts:
        import torch

        parts = clip.load_clip(str(self._clip_files.path), self.device, torch_dtype(self.dtype))
        head = aesthetic_head(parts.model.config.projection_dim)
        state = torch.load(self._head.path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("layers."): v for k, v in state.items()}
        try:
            head.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise UserError(f"{self.name}: {self._head.path} is not the aesthetic MLP: {exc}") from None
        return AestheticParts(clip=parts, head=head.to(self.device).float().eval())

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        import torch

        parts = self.backbone
        embeddings = clip.image_embeddings(parts.clip, images, self.device)
        with torch.inference_mode():
            ratings = parts.head(embeddings).squeeze(-1)
        return [ScoreResult(value=float(r)) for r in ratings.tolist()]
