"""SLD's open-vocabulary detector and box-prompted masks through transformers (Wu et al., CVPR 2024, §3.2).

`OwlDetector`: OWLv2 (`google/owlv2-base-patch16-ensemble`, `Owlv2Processor` + `Owlv2ForObjectDetection`) queried,
as the original does, with "image of a <attribute> <noun>" for every attribute the parse names and
"image of a <noun>" for every object (attribute and primitive queries); each kept box passes its split's score
threshold (attribute 0.45, primitive 0.2: the benchmark config) and class-aware NMS (IoU 0.15). A primitive box
that overlaps a kept attribute box of the same noun (IoU > the NMS threshold) is the same object and dropped.
Names are "<phrase> #k", k by descending score within the phrase; boxes are [x, y, w, h] in [0, 1]. Images are
square here (SLD assumes so; non-square ones are resized to `resolution`² first), which also sidesteps OWLv2's
bottom/right padding (transformers#27205).

`SamMasker`: SAM (`facebook/sam-vit-huge` in the original; any `SamModel` repo) from box prompts: the mean
probability of its three masks above 0.5, kept inside the box; an empty mask falls back to the box itself.

Weights resolve through `imgbench.models.hub` when the method is built, so offline a missing model fails in well
under a second naming the repo, the `hf download` command and the `--method-arg ..._path=DIR` alternative.
"""

from __future__ import annotations

from typing import Any

from imgbench.errors import UserError
from imgbench.models.hub import ResolvedSource, WeightSource, resolve_all
from imgbench.util.boxes import xywh_iou


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def queries(objects: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(query text, phrase, is_attribute) for every attribute phrase and every noun of the parse, deduplicated."""
    out: dict[str, tuple[str, str, bool]] = {}
    for obj in objects:
        noun = obj["name"]
        for attribute in obj.get("attributes") or []:
            if attribute:
                phrase = f"{attribute} {noun}"
                out.setdefault(phrase, (f"image of {_article(phrase)} {phrase}", phrase, True))
        out.setdefault(noun, (f"image of {_article(noun)} {noun}", noun, False))
    return list(out.values())


def nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression (IoU > threshold suppresses), best first."""
    order, kept = sorted(range(len(boxes)), key=lambda i: -scores[i]), []
    for i in order:
        if all(xywh_iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def _load(role: str, resolved: ResolvedSource, flag: str, loaders: tuple[Any, Any]) -> tuple[Any, Any]:
    try:
        return tuple(cls.from_pretrained(resolved.location, **resolved.load_kwargs()) for cls in loaders)
    except OSError as exc:
        raise UserError(f"loading the {role} {resolved.location} failed: {exc}. Pre-download it with "
                        f"`{resolved.source.download_command()}` or pass --method-arg {flag}=DIR.") from exc


class OwlDetector:
    """OWLv2 with SLD's queries, thresholds and class-aware NMS; loaded on first use."""

    def __init__(self, model: str, revision: str | None = None, path: str | None = None,
                 attribute_threshold: float = 0.45, primitive_threshold: float = 0.2, nms_threshold: float = 0.15,
                 device: str | None = None, resolved: ResolvedSource | None = None) -> None:
        self.resolved = resolved or resolve_all({"detector": detector_source(model, revision, path)})["detector"]
        self.settings = {"attribute_threshold": float(attribute_threshold),
                         "primitive_threshold": float(primitive_threshold), "nms_threshold": float(nms_threshold)}
        self.device = device
        self._model: Any = None
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"weights": self.resolved.identity(), **self.settings}

    def detect(self, image: Any, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """[{name, phrase, noun, box, score}] for the parse's objects in a square image."""
        import torch
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        from imgbench.models.diffusers_base import resolve_device

        if self._model is None:
            self._processor, model = _load("detector", self.resolved, "detector_path",
                                           (Owlv2Processor, Owlv2ForObjectDetection))
            self._model = model.to(resolve_device(self.device)).eval()
        asked = queries(objects)
        if not asked:
            return []
        self.calls += 1
        inputs = self._processor(text=[[q for q, _, _ in asked]], images=image.convert("RGB"), return_tensors="pt")
        with torch.inference_mode():
            outputs = self._model(**inputs.to(self._model.device))
        side = max(image.size)
        found = self._processor.post_process_grounded_object_detection(outputs, threshold=0.0,
                                                                       target_sizes=[(side, side)])[0]
        by_phrase: dict[int, list[tuple[list[float], float]]] = {}
        for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist(),
                                     strict=True):
            split = "attribute" if asked[label][2] else "primitive"
            if score >= self.settings[f"{split}_threshold"]:
                x0, y0, x1, y1 = (min(max(v / side, 0.0), 1.0) for v in box)
                if x1 - x0 >= 1 / side and y1 - y0 >= 1 / side:  # at least a pixel each way
                    by_phrase.setdefault(label, []).append(([x0, y0, x1 - x0, y1 - y0], score))
        return self._name([(asked[label], kept) for label, kept in by_phrase.items()])

    def _name(self, found: list[tuple[tuple[str, str, bool], list[tuple[list[float], float]]]]) -> list[dict]:
        threshold = self.settings["nms_threshold"]
        kept: list[dict[str, Any]] = []
        for (_, phrase, attribute), boxes in sorted(found, key=lambda item: not item[0][2]):  # attributes first
            noun = phrase.split()[-1]
            for rank, i in enumerate(nms([b for b, _ in boxes], [s for _, s in boxes], threshold)):
                box, score = boxes[i]
                if not attribute and any(k["noun"] == noun and xywh_iou(k["box"], box) > threshold for k in kept):
                    continue
                kept.append({"name": f"{phrase} #{rank + 1}", "phrase": phrase, "noun": noun,
                             "box": [round(v, 4) for v in box], "score": round(float(score), 4)})
        counts: dict[str, int] = {}
        for item in kept:  # renumber after the primitive boxes that duplicated attribute boxes were dropped
            counts[item["phrase"]] = counts.get(item["phrase"], 0) + 1
            item["name"] = f"{item['phrase']} #{counts[item['phrase']]}"
        return kept


class SamMasker:
    """SAM from box prompts → one boolean pixel mask per box; loaded on first use."""

    def __init__(self, model: str, revision: str | None = None, path: str | None = None, device: str | None = None,
                 resolved: ResolvedSource | None = None) -> None:
        self.resolved = resolved or resolve_all({"sam": sam_source(model, revision, path)})["sam"]
        self.device = device
        self._model: Any = None
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"weights": self.resolved.identity(), "mask": "mean of 3, > 0.5, inside the box"}

    def masks(self, image: Any, boxes: list[list[float]]) -> list[Any]:
        """Boolean (H, W) tensors, one per [x, y, w, h] box."""
        import torch
        from transformers import SamModel, SamProcessor

        from imgbench.models.diffusers_base import resolve_device

        if not boxes:
            return []
        if self._model is None:
            self._processor, model = _load("SAM model", self.resolved, "sam_path", (SamProcessor, SamModel))
            self._model = model.to(resolve_device(self.device)).eval()
        self.calls += 1
        width, height = image.size
        pixels = [[b[0] * width, b[1] * height, (b[0] + b[2]) * width, (b[1] + b[3]) * height] for b in boxes]
        inputs = self._processor(images=image.convert("RGB"), input_boxes=[pixels], return_tensors="pt")
        with torch.inference_mode():
            out = self._model(pixel_values=inputs["pixel_values"].to(self._model.device),
                              input_boxes=inputs["input_boxes"].to(self._model.device), multimask_output=True)
        logits = self._processor.post_process_masks(out.pred_masks.cpu(), inputs["original_sizes"],
                                                    inputs["reshaped_input_sizes"], binarize=False)[0]
        masks = []
        for box_pixels, logit in zip(pixels, logits, strict=True):
            inside = torch.zeros(height, width, dtype=torch.bool)
            x0, y0, x1, y1 = (round(v) for v in box_pixels)
            inside[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
            mask = (logit.float().sigmoid().mean(0) > 0.5) & inside
            masks.append(mask if mask.any() else inside)
        return masks


def detector_source(model: str, revision: str | None, path: str | None) -> WeightSource:
    return WeightSource(role="SLD detector (OWLv2)", repo_id=model or None, revision=revision, local_path=path,
                        probe="config.json", flag="--method-arg detector_path=DIR")


def sam_source(model: str, revision: str | None, path: str | None) -> WeightSource:
    return WeightSource(role="SLD segmenter (SAM)", repo_id=model or None, revision=revision, local_path=path,
                        probe="config.json", flag="--method-arg sam_path=DIR")
