"""The exact checker: the shapes world's GenEval (Ghosh et al., 2023), with no learned parts.

Detection: each pixel takes the nearest palette colour (black background, red, green, blue,
yellow; "other" if far from all), connected components per colour are the objects (tiny ones are
noise), and a component's shape follows from how it narrows towards the top (an apex-up triangle)
and how full the corners of its box are (a square's are full, a disc's about a quarter). The verdict compares
the detections with the prompt's spec: exact object multiset (nothing missing, nothing extra),
colours, shapes, colour binding and the spatial relation, with the first failure as the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from imgbench.worlds.shapes.render import CANVAS, PALETTE

NAMES = ("black",) + tuple(PALETTE)
COLORS_RGB = np.array([(0, 0, 0)] + list(PALETTE.values()), dtype=float)
OTHER_DISTANCE = 150.0
MIN_AREA = 6
TRIANGLE_TAPER = 0.6
SQUARE_CORNER_FILL = 0.6  # chosen on the hand-labelled development images (tests/fixtures/shapes_labelled)
POSITION_MARGIN = 2.0
OTHER = "other"


@dataclass(frozen=True)
class Detection:
    color: str
    shape: str
    x: float
    """Bounding-box centre (a triangle's centroid sits low, its box centre does not)."""
    y: float
    area: int


def label_colors(pixels: np.ndarray) -> np.ndarray:
    """(H, W) index into NAMES per pixel; len(NAMES) marks 'other' (far from every palette colour)."""
    dist = np.linalg.norm(pixels[:, :, None, :].astype(float) - COLORS_RGB[None, None], axis=-1)
    labels = dist.argmin(-1)
    labels[dist.min(-1) > OTHER_DISTANCE] = len(NAMES)
    return labels


def _trim_strays(mask: np.ndarray) -> np.ndarray:
    """The mask without outer rows/columns of at most 2 pixels that are under a quarter of the widest:
    a generated shape often has a stray pixel on an edge, which would move its box corners off it."""
    rows, cols = mask.sum(1), mask.sum(0)
    keep_r = np.nonzero(rows > min(2, rows.max() / 4))[0]
    keep_c = np.nonzero(cols > min(2, cols.max() / 4))[0]  # never empty: the widest row/column always stays
    return mask[keep_r[0]:keep_r[-1] + 1, keep_c[0]:keep_c[-1] + 1]


def classify(mask: np.ndarray) -> str:
    """circle | square | triangle from a component's mask cropped to its bounding box.

    The two cues a person uses, measured so that soft edges and stray pixels do not flip them: a
    triangle narrows towards the top (top third of the rows under TRIANGLE_TAPER of the bottom
    third's mean width), and a square fills the corners of its box (mean fill of the four corner
    cells, a quarter of the side each, at least SQUARE_CORNER_FILL; a disc leaves them ~1/4 full)."""
    widths = mask.sum(1)
    third = max(1, len(widths) // 3)
    if widths[:third].mean() < TRIANGLE_TAPER * widths[-third:].mean():
        return "triangle"
    core = _trim_strays(mask)
    k = max(1, round(min(core.shape) / 4))
    corner_fill = np.mean([core[:k, :k].mean(), core[:k, -k:].mean(), core[-k:, :k].mean(), core[-k:, -k:].mean()])
    return "square" if corner_fill >= SQUARE_CORNER_FILL else "circle"


def detect(image: Image.Image) -> list[Detection]:
    """Objects in an image (any size; resampled to the world's 32×32 canvas first)."""
    image = image.convert("RGB")
    if image.size != (CANVAS, CANVAS):
        image = image.resize((CANVAS, CANVAS), Image.Resampling.BOX)
    labels = label_colors(np.asarray(image))
    found = []
    for index in range(1, len(NAMES) + 1):
        components, count = ndimage.label(labels == index)
        for box_index, box in enumerate(ndimage.find_objects(components), start=1):
            mask = components[box] == box_index
            if mask.sum() < MIN_AREA:
                continue
            name = NAMES[index] if index < len(NAMES) else OTHER
            shape = classify(mask) if name != OTHER else OTHER
            found.append(Detection(name, shape, x=(box[1].start + box[1].stop - 1) / 2,
                                   y=(box[0].start + box[0].stop - 1) / 2, area=int(mask.sum())))
    return sorted(found, key=lambda d: (d.x, d.y))


def _match(slots: list[tuple[str, str | None]], found: list[Detection]) -> list[int] | None:
    """Detection index per slot (shape, colour or None), or None. Colour-specific slots first:
    detections of one (colour, shape) are interchangeable, so greedy is optimal here."""
    free = set(range(len(found)))
    assigned: list[int | None] = [None] * len(slots)
    order = sorted(range(len(slots)), key=lambda i: slots[i][1] is None)
    for i in order:
        shape, color = slots[i]
        pick = next((j for j in sorted(free) if found[j].shape == shape and color in (None, found[j].color)), None)
        if pick is None:
            return None
        assigned[i] = pick
        free.discard(pick)
    return [a for a in assigned if a is not None]


def _relation_holds(a: Detection, b: Detection, rel: str) -> bool:
    offset = {"left of": b.x - a.x, "right of": a.x - b.x, "above": b.y - a.y, "below": a.y - b.y}[rel]
    return offset >= POSITION_MARGIN


def check(image: Image.Image, spec: dict[str, Any]) -> dict[str, Any]:
    """Verdict for one image: correct, the first failure's reason, per-aspect results and detections."""
    found = detect(image)
    slots = [(o["shape"], o.get("color")) for o in spec["objects"] for _ in range(int(o.get("count", 1)))]
    first_slot = np.cumsum([0] + [int(o.get("count", 1)) for o in spec["objects"]])
    want_colors = sorted(c for _, c in slots if c)
    got_colors = sorted(d.color for d in found)
    color_ok = not want_colors or all(want_colors.count(c) <= got_colors.count(c) for c in set(want_colors))
    shape_ok = sorted(s for s, _ in slots) == sorted(d.shape for d in found)
    count_ok = len(found) == len(slots)
    assignment = _match(slots, found) if count_ok else None
    aspects: dict[str, bool | None] = {"count": count_ok, "color": color_ok if want_colors else None,
                                       "shape": shape_ok, "binding": None, "position": None}
    if len(want_colors) > 1:
        aspects["binding"] = assignment is not None
    relation = spec.get("relation")
    position_ok = True
    if relation:
        pair = _match([slots[first_slot[relation["a"]]], slots[first_slot[relation["b"]]]], found)
        if pair is not None:
            position_ok = _relation_holds(found[pair[0]], found[pair[1]], relation["rel"])
            aspects["position"] = position_ok
    if not count_ok:
        if spec.get("skill") == "counting":
            reason = f"wrong count ({len(found)} objects, want {len(slots)})"
        else:
            reason = "missing object" if len(found) < len(slots) else "extra object"
    elif assignment is None:
        reason = "wrong color" if not color_ok else "wrong shape" if not shape_ok else "wrong attribute binding"
    elif not position_ok:
        reason = "wrong position"
    else:
        reason = "ok"
    return {"correct": reason == "ok", "reason": reason, "aspects": aspects,
            "detected": [asdict(d) for d in found]}
