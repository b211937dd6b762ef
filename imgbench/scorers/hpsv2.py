"""HPS v2 and v2.1: cos(E_image, E_text) of OpenCLIP ViT-H-14 fine-tuned on HPD v2 (Wu et al., 2023).

Checkpoints `xswu/HPSv2`: `HPS_v2_compressed.pt` (name `hpsv2`) and `HPS_v2.1_compressed.pt` (name
`hpsv2.1`). The two versions are different models on different scales, so they are two scorers with two
names and two cache keys; a table never mixes them. The value is what `hpsv2.score` returns: the cosine
of the normalised embeddings (no logit scale), typically 0.20–0.35, comparable only between images of the
same prompt (tgxs002/HPSv2#9).

Fidelity: the open_clip tensors are loaded into transformers' CLIP classes by an exact renaming
(imgbench/scorers/openclip.py); images follow HPSv2's `preprocess_val` (long side to 224, bicubic with
antialiasing — torchvision's current default for tensors — zero padding to a square, OpenAI mean/std);
text uses the CLIP BPE tokenizer of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (open_clip's tokenizer:
lowercase, 77 tokens, EOT kept on truncation, which is reported). HPSv2 runs the model under CUDA
autocast (fp16); the default here is fp32, so expect differences around 1e-3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.errors import UserError
from imgbench.scorers import clip
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_file, hub_snapshot, local_file
from imgbench.scorers.openclip import VIT_H_14, load_openclip_into_hf


class HPSv2(BackboneScorer):
    """Human Preference Score v2.0: cosine of HPS-tuned ViT-H-14 embeddings, in [-1, 1]."""

    name = "hpsv2"
    version = 1
    value_range = (-1.0, 1.0)
    higher_is_better = True
    checkpoint: ClassVar[str] = "HPS_v2_compressed.pt"
    arch: ClassVar[dict[str, Any]] = VIT_H_14

    def __init__(self, repo: str = "xswu/HPSv2", checkpoint_path: str | None = None,
                 processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", revision: str | None = None,
                 long_prompts: str = "truncate", backbone: Any = None, device: str | None = None,
                 dtype: str = "fp32") -> None:
        self.repo, self.checkpoint_path, self.processor_id, self.revision = repo, checkpoint_path, processor, revision
        super().__init__(backbone, device, dtype, repo=repo, checkpoint=self.checkpoint, processor=processor,
                         revision=revision, long_prompts=long_prompts)

    def resolve_weights(self) -> dict[str, Any]:
        self._checkpoint = (local_file(self.checkpoint_path, self.name) if self.checkpoint_path
                            else hub_file(self.repo, self.checkpoint, self.name, self.revision))
        self._processor_files = hub_snapshot(self.processor_id, self.name, clip.PROCESSOR_FILES)
        return {"checkpoint": self._checkpoint.identity(), "processor": self._processor_files.identity()}

    def load_backbone(self) -> clip.ClipParts:
        import torch

        raw = torch.load(self._checkpoint.path, map_location="cpu", weights_only=True)
        state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
        if not isinstance(state, dict):
            raise UserError(f"{self.name}: {self._checkpoint.path} is not an HPSv2 checkpoint (no state_dict).")
        model = load_openclip_into_hf(state, self.arch, torch_dtype(self.dtype)).to(self.device)
        parts = clip.with_processor(model, str(self._processor_files.path), resize="pad")
        parts.mean, parts.std, parts.image_size = clip.OPENAI_MEAN, clip.OPENAI_STD, self.arch["vision"]["image_size"]
        return parts

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        image, text, facts = clip.embed(self.backbone, images, [p.text for p in prompts], self.device,
                                        self.params["long_prompts"], self.name)
        cosine = (image * text).sum(dim=-1)
        return [ScoreResult(value=float(c), details=dict(f)) for c, f in zip(cosine.tolist(), facts, strict=True)]


class HPSv21(HPSv2):
    """Human Preference Score v2.1 (a separate checkpoint and scale; never averaged with v2.0)."""

    name = "hpsv2.1"
    checkpoint: ClassVar[str] = "HPS_v2.1_compressed.pt"
