"""GenEval-style object-focused alignment: 1 if the image satisfies the prompt's GenEval metadata, else 0.

Reads `prompt.metadata` in the format of GenEval's `evaluation_metadata.jsonl` (tag, include, exclude with
class, count, color, position), applies GenEval's rules (imgbench/scorers/geneval_rules.py) and returns
per image `correct` and GenEval's textual `reason`. Detector: OWLv2 (`google/owlv2-base-patch16-ensemble`)
queried with "a photo of a {class}" for the classes the metadata names; colour: zero-shot CLIP ViT-L/14
(OpenAI weights, as GenEval) over GenEval's ten colours and three templates on the box crop.

Differences from the official evaluator (Mask2Former Swin-S on mmdetection, COCO's 80 classes):
- an open-vocabulary detector queried only for the named classes, instead of a closed-set COCO detector
  run for all 80 classes; its scores are calibrated differently, so the thresholds are our defaults
  (0.2, counting 0.3, NMS 0.5 — OWLv2 returns overlapping boxes where Mask2Former returns one mask per
  instance), not GenEval's 0.3 / 0.9 / no NMS; they are parameters and part of the cache key;
- colour is classified on the box crop, not on the instance mask over a grey background (OWLv2 has no masks);
- boxes are OWLv2's (on the image padded to a square, mapped back to pixels), not mask-derived.
Scores are therefore GenEval-*style*: compare methods with it, do not quote it as the GenEval number.
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
from imgbench.scorers.geneval_rules import COLORS, evaluate, select
from imgbench.scorers.hub import hub_snapshot

COLOUR_TEMPLATES = ["a photo of a {c} {name}", "a photo of a {c}-colored {name}", "a photo of a {c} object"]


@dataclass
class GenEvalParts:
    detector: Any
    """transformers Owlv2ForObjectDetection."""
    processor: Any
    """Its Owlv2Processor."""
    colour: clip.ClipParts
    """CLIP for zero-shot colour classification."""


def detect(parts: GenEvalParts, image: Image, classes: Sequence[str], device: str) -> dict[str, list]:
    """Every predicted box with its best query as label and sigmoid score (HF's OWLv2 post-processing, threshold 0)."""
    import torch

    image = image.convert("RGB")
    queries = [f"a photo of a {name}" for name in classes]
    inputs = parts.processor(text=[queries], images=image, return_tensors="pt")
    dtype = next(parts.detector.parameters()).dtype
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    with torch.inference_mode():
        outputs = parts.detector(**inputs)
    best = outputs.logits[0].float().max(dim=-1)
    scores, labels = torch.sigmoid(best.values), best.indices
    cx, cy, w, h = outputs.pred_boxes[0].float().unbind(-1)
    side = float(max(image.size))  # OWLv2 pads to a square at the bottom/right before resizing
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * side
    raw: dict[str, list] = {name: [] for name in classes}
    for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
        raw[classes[label]].append((box, score))
    return raw


def classify_colours(parts: clip.ClipParts, image: Image, name: str, boxes: Sequence[Sequence[float]],
                     device: str) -> list[str]:
    """GenEval's zero-shot colour classifier: mean of normalised template embeddings per colour, argmax."""
    import torch

    texts = [t.format(c=c, name=name) for c in COLORS for t in COLOUR_TEMPLATES]
    tokens, _ = clip.tokenize(parts.tokenizer, texts, clip.text_window(parts))
    model = parts.model
    with torch.inference_mode():
        text = model.text_projection(model.text_model(input_ids=tokens["input_ids"].to(device),
                                                      attention_mask=tokens["attention_mask"].to(device))
                                     .pooler_output).float()
    text = text / text.norm(dim=-1, keepdim=True)
    classifier = text.view(len(COLORS), len(COLOUR_TEMPLATES), -1).mean(dim=1)
    classifier = classifier / classifier.norm(dim=-1, keepdim=True)
    rgb = image.convert("RGB")
    crops = [rgb.crop(tuple(int(round(v)) for v in box[:4])) for box in boxes]
    crops = [c if c.size[0] > 0 and c.size[1] > 0 else rgb for c in crops]
    embeddings = clip.image_embeddings(parts, crops, device)
    return [COLORS[i] for i in (embeddings @ classifier.T).argmax(dim=-1).tolist()]


class GenEval(BackboneScorer):
    """1 if an OWLv2 + CLIP reading of the image satisfies the GenEval metadata (GenEval's rules), else 0."""

    name = "geneval"
    version = 1
    value_range = (0.0, 1.0)
    higher_is_better = True

    def __init__(self, detector: str = "google/owlv2-base-patch16-ensemble",
                 clip_model: str = "openai/clip-vit-large-patch14", threshold: float = 0.2,
                 counting_threshold: float = 0.3, nms_threshold: float = 0.5, max_objects: int = 16,
                 position_threshold: float = 0.1, revision: str | None = None, backbone: Any = None,
                 device: str | None = None, dtype: str = "fp32") -> None:
        self.detector_id, self.clip_id, self.revision = detector, clip_model, revision
        super().__init__(backbone, device, dtype, detector=detector, clip_model=clip_model, threshold=threshold,
                         counting_threshold=counting_threshold, nms_threshold=nms_threshold,
                         max_objects=max_objects, position_threshold=position_threshold, revision=revision)

    def resolve_weights(self) -> dict[str, Any]:
        self._detector_files = hub_snapshot(self.detector_id, self.name, ["*.json", "*.txt"], clip.WEIGHT_FILES,
                                            self.revision)
        self._clip_files = hub_snapshot(self.clip_id, self.name, ["config.json", *clip.PROCESSOR_FILES],
                                        clip.WEIGHT_FILES)
        return {"detector": self._detector_files.identity(), "clip": self._clip_files.identity()}

    def load_backbone(self) -> GenEvalParts:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        folder = str(self._detector_files.path)
        detector = Owlv2ForObjectDetection.from_pretrained(folder, dtype=torch_dtype(self.dtype)).to(self.device)
        return GenEvalParts(detector=detector.eval(), processor=Owlv2Processor.from_pretrained(folder),
                            colour=clip.load_clip(str(self._clip_files.path), self.device, torch_dtype(self.dtype)))

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        parts: GenEvalParts = self.backbone
        p = self.params
        results = []
        for image, prompt in zip(images, prompts, strict=True):
            metadata = prompt.metadata
            if not metadata.get("include") or "tag" not in metadata:
                raise UserError(f"geneval: prompt {prompt.id!r} has no GenEval metadata (tag, include, exclude as in "
                                f"GenEval's evaluation_metadata.jsonl); score GenEval-format tasks only.")
            classes = list(dict.fromkeys(r["class"] for r in [*metadata["include"], *metadata.get("exclude", [])]))
            threshold = p["counting_threshold"] if metadata["tag"] == "counting" else p["threshold"]
            detected = select(detect(parts, image, classes, self.device), threshold, p["max_objects"],
                              p["nms_threshold"])
            correct, reason = evaluate(
                metadata, detected, lambda name, boxes, im=image: classify_colours(parts.colour, im, name, boxes,
                                                                                   self.device),
                p["position_threshold"])
            results.append(ScoreResult(value=1.0 if correct else 0.0, details={
                "correct": correct, "reason": reason, "tag": metadata["tag"],
                "detections": {k: [[*(round(v, 2) for v in box), round(s, 4)] for box, s in boxes]
                               for k, boxes in detected.items()}}))
        return results
