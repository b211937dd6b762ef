"""GenEval's decision rules (Ghosh et al., NeurIPS 2023 D&B, djghosh13/geneval `evaluate_images.py`), detector-free.

Input: GenEval metadata (`tag`, `include` / `exclude` lists of {class, count, color?, position?}) and the
detections per class, most confident first. The rules, as upstream:
- boxes per class: keep score > threshold (counting prompts use the stricter counting threshold), at most
  `max_objects`, greedy NMS at `nms_threshold` (1.0 = off, upstream's default for Mask2Former);
- include (AND): at least `count` boxes of the class; with `color`, at least `count` of the `count` most
  confident boxes classified as that colour; with `position` [relation, i], every one of those boxes must
  stand in `relation` to every box matched by include clause i (which must itself have matched);
- exclude (OR): `count` or more boxes of the class make the image incorrect;
- relative position: centre offset shrunk by `position_threshold` × (sum of the boxes' sizes) per axis,
  then normalised; |component| > 0.5 gives left of / right of / above / below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
Box = Sequence[float]
"""[x0, y0, x1, y1] in pixels."""


def iou(a: Box, b: Box) -> float:
    """GenEval's IoU (inclusive pixel boxes: +1 on each side)."""
    def area(box: Sequence[float]) -> float:
        return max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)

    inter = area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = area(a) + area(b) - inter
    return inter / union if union else 0.0


def select(raw: Mapping[str, Sequence[tuple[Box, float]]], threshold: float, max_objects: int = 16,
           nms_threshold: float = 1.0) -> dict[str, list[tuple[list[float], float]]]:
    """Per class: threshold, sort by confidence, cap at max_objects, greedy NMS. Classes with no box are dropped."""
    kept: dict[str, list[tuple[list[float], float]]] = {}
    for name, boxes in raw.items():
        order = sorted((b for b in boxes if b[1] > threshold), key=lambda b: -b[1])[:max_objects]
        chosen: list[tuple[list[float], float]] = []
        while order:
            best = order.pop(0)
            chosen.append((list(map(float, best[0])), float(best[1])))
            order = [b for b in order if nms_threshold == 1 or iou(best[0], b[0]) < nms_threshold]
        if chosen:
            kept[name] = chosen
    return kept


def relative_position(a: Box, b: Box, position_threshold: float = 0.1) -> set[str]:
    """Relations of box a to box b (GenEval's rule, factoring in object sizes)."""
    boxes = np.array([a[:4], b[:4]], dtype=float).reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


ColourFn = Callable[[str, Sequence[Box]], list[str]]
"""(class name, boxes) → one colour name from COLORS per box."""


def evaluate(metadata: Mapping[str, Any], detected: Mapping[str, Sequence[tuple[Box, float]]], colour_of: ColourFn,
             position_threshold: float = 0.1) -> tuple[bool, str]:
    """(correct, reason) for one image; the reason lists every failed clause, one per line."""
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Box] | None] = []
    for req in metadata.get("include", []):
        name, count = req["class"], int(req["count"])
        found = [box for box, _ in detected.get(name, [])][:count]
        matched = True
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colours = colour_of(name, found)
                if colours.count(req["color"]) < count:
                    correct = matched = False
                    reasons.append(f"expected {req['color']} {name}>={count}, found {colours.count(req['color'])} "
                                   f"{req['color']}; and " + ", ".join(f"{colours.count(c)} {c}" for c in COLORS
                                                                       if c in colours))
            if "position" in req and matched:
                relation, target = req["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {name} to be {relation}")
                else:
                    for box in found:
                        for target_box in matched_groups[target]:
                            actual = relative_position(box, target_box, position_threshold)
                            if relation not in actual:
                                correct = matched = False
                                reasons.append(f"expected {name} {relation} target, found "
                                               f"{' and '.join(sorted(actual))} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        name, count = req["class"], int(req["count"])
        if len(detected.get(name, [])) >= count:
            correct = False
            reasons.append(f"expected {name}<{count}, found {len(detected[name])}")
    return correct, "\n".join(reasons)
