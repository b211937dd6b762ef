"""The exact checker: the shapes world's GenEval (Ghosh et al., 2023), with no learned parts.

Detection: each pixel takes the nearest palette colour (black background, red, green, blue,
yellow; "other" if far from all), connected components per colour are the objects (tiny ones are
noise; a red or green tint touching a yellow object is part of it), and a component's shape follows
from how it narrows towards the top (an apex-up triangle) and otherwise from its corner moment over its
soft coverage (a square's x and y spread independently, a disc's do not). The verdict compares the
detections with the prompt's spec: exact object multiset (nothing missing, nothing extra), colours,
shapes, colour binding and the spatial relation, with the first failure as the reason.
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
TRIANGLE_FIT = 1.2  # set on the five labelled sets before heldout5 was drawn
SQUARE_MOMENT = 0.85  # between a disc's 2/3 and a square's 1; set on the labelled sets before heldout8 was drawn
TINT_PAIRS = ({"yellow", "red"}, {"yellow", "green"})
TINT_SHARE = 0.5
POSITION_MARGIN = 3.0  # the renderer's RELATION_MARGIN (4 px) less a pixel of drawing error; people reject 2-3 px
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


def box_template(shape: str, height: int, width: int) -> np.ndarray:
    """The world's shape drawn to fill an h×w box (an ellipse for a stretched disc, apex-up triangle)."""
    if shape == "square":
        return np.ones((height, width), dtype=bool)
    rows, cols = np.mgrid[:height, :width].astype(float) + 0.5
    if shape == "triangle":
        return np.abs(cols - width / 2) <= rows / height * width / 2
    return ((cols - width / 2) / (width / 2)) ** 2 + ((rows - height / 2) / (height / 2)) ** 2 <= 1


def overlap(mask: np.ndarray, template: np.ndarray) -> float:
    return float((mask & template).sum() / (mask | template).sum())


def corner_moment(weights: np.ndarray) -> float:
    """E[dx²dy²] / (E[dx²]·E[dy²]) of a blob's (soft) pixel weights about their centroid: 1 for an
    axis-aligned square (x and y independent), 2/3 for a disc, whatever its size, and insensitive to a
    flat side or a soft corner pixel, which decide an overlap score on a blob of 7 px."""
    rows, cols = np.mgrid[:weights.shape[0], :weights.shape[1]].astype(float)
    w = weights / weights.sum()
    dx, dy = cols - (w * cols).sum(), rows - (w * rows).sum()
    return float((w * dx ** 2 * dy ** 2).sum() / ((w * dx ** 2).sum() * (w * dy ** 2).sum()))


def classify(mask: np.ndarray, coverage: np.ndarray | None = None) -> str:
    """circle | square | triangle from a component's mask cropped to its bounding box, and its soft
    coverage over that box grown by a pixel (default: the mask).

    The two cues a person uses: a triangle narrows towards the top (top third of the rows under
    TRIANGLE_TAPER of the bottom third's mean width) and is not plainly a disc with a pointed top (a
    triangle drawn in its box overlaps it at least 1/TRIANGLE_FIT as well as a disc does); otherwise the
    blob is a square if its corner moment is nearer a square's than a disc's (over SQUARE_MOMENT), read
    from the coverage because a person sees a dim edge pixel as a rounded corner
    (tests/fixtures/shapes_labelled/README.md)."""
    height, width = mask.shape
    circle, triangle = (overlap(mask, box_template(shape, height, width)) for shape in ("circle", "triangle"))
    widths = mask.sum(1)
    third = max(1, len(widths) // 3)
    if widths[:third].mean() < TRIANGLE_TAPER * widths[-third:].mean() and TRIANGLE_FIT * triangle >= circle:
        return "triangle"
    return "square" if corner_moment(mask if coverage is None else coverage) > SQUARE_MOMENT else "circle"


def coverage_of(pixels: np.ndarray, labels: np.ndarray, full: np.ndarray, color: str) -> np.ndarray:
    """How much of each pixel the object covers (its colour's share, 0-1) over its mask grown by a pixel
    into the dim background around it (never into another object's colour), cropped to the grown box."""
    rgb = COLORS_RGB[NAMES.index(color)]
    share = np.clip(pixels.astype(float) @ rgb / (rgb @ rgb), 0, 1)
    dim = (labels == 0) | (labels == len(NAMES))
    region = full | (ndimage.binary_dilation(full, structure=np.ones((3, 3), bool)) & dim)
    rows, cols = np.nonzero(region.any(1))[0], np.nonzero(region.any(0))[0]
    return (share * region)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _regions(labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(colour name, full-canvas mask) per connected single-colour region."""
    regions = []
    for index in range(1, len(NAMES) + 1):
        components, count = ndimage.label(labels == index)
        name = NAMES[index] if index < len(NAMES) else OTHER
        regions += [(name, components == k) for k in range(1, count + 1)]
    return regions


def _merge_tints(regions: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Fold a red or green tint into the yellow object it touches, or a yellow patch into its red or green
    object, when it is at most TINT_SHARE of that object's area. Yellow is red + green light, so a yellow
    shape whose one channel fades (or a red or green one whose other channel rises) splits into
    touching regions that a person sees as one object of the larger region's colour."""
    regions = sorted(regions, key=lambda r: int(r[1].sum()))
    areas = [int(mask.sum()) for _, mask in regions]
    merged: list[tuple[str, np.ndarray]] = []
    for i, (name, mask) in enumerate(regions):
        grown = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool))
        hosts = [j for j in range(i + 1, len(regions)) if {name, regions[j][0]} in TINT_PAIRS
                 and areas[i] <= TINT_SHARE * areas[j] and (grown & regions[j][1]).any()]
        if hosts:
            host = max(hosts, key=lambda j: areas[j])
            regions[host] = (regions[host][0], regions[host][1] | mask)
            areas[host] += areas[i]
        else:
            merged.append((name, mask))
    return merged


def objects(image: Image.Image) -> list[tuple[Detection, np.ndarray]]:
    """Each object with its full-canvas mask, in `detect`'s order: what an editor's training data needs to
    erase, move or recolour one object and leave the others' pixels alone."""
    image = image.convert("RGB")
    if image.size != (CANVAS, CANVAS):
        image = image.resize((CANVAS, CANVAS), Image.Resampling.BOX)
    pixels = np.asarray(image)
    labels = label_colors(pixels)
    found = []
    for name, full in _merge_tints(_regions(labels)):
        if full.sum() < MIN_AREA:
            continue
        rows, cols = np.nonzero(full.any(1))[0], np.nonzero(full.any(0))[0]
        mask = full[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        shape = classify(mask, coverage_of(pixels, labels, full, name)) if name != OTHER else OTHER
        found.append((Detection(name, shape, x=float(cols[0] + cols[-1]) / 2, y=float(rows[0] + rows[-1]) / 2,
                                area=int(mask.sum())), full))
    return sorted(found, key=lambda item: (item[0].x, item[0].y))


def detect(image: Image.Image) -> list[Detection]:
    """Objects in an image (any size; resampled to the world's 32×32 canvas first)."""
    return [detection for detection, _ in objects(image)]


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
