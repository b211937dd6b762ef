"""Ground-truth pictures of a spec: flat, hard-edged shapes on black, deterministic from a seed.

These are the training images of the world's diffusion model and the fixtures that prove the
checker right. Objects never touch (≥ 2 px between bounding boxes), so the checker's connected
components are the objects; spatial relations are drawn with ≥ 4 px between the centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from imgbench.worlds.shapes.grammar import COLORS, SHAPES

CANVAS = 32
PALETTE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
GAP = 2
MARGIN = 1
RELATION_MARGIN = 4
MAX_TRIES = 2000


@dataclass(frozen=True)
class Placed:
    """One drawn object: colour, shape, and its s×s box at (top, left)."""

    color: str
    shape: str
    top: int
    left: int
    size: int

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre; for a triangle the checker's centroid sits a little lower."""
        return self.left + (self.size - 1) / 2, self.top + (self.size - 1) / 2


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean s×s mask of a disc, a full square, or an upright isosceles triangle (apex up)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float) + 0.5
    c = size / 2
    if shape == "circle":
        return (xx - c) ** 2 + (yy - c) ** 2 <= c * c
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "triangle":
        return np.abs(xx - c) <= yy / 2
    raise ValueError(f"unknown shape {shape!r}; the world has {SHAPES}")


def _expand(spec: dict[str, Any], rng: np.random.Generator) -> list[tuple[str, str]]:
    """(colour, shape) per drawn object; unspecified colours are drawn at random per object."""
    out = []
    for obj in spec["objects"]:
        for _ in range(int(obj.get("count", 1))):
            color = obj.get("color") or COLORS[int(rng.integers(len(COLORS)))]
            out.append((color, obj["shape"]))
    return out


def _relation_holds(a: Placed, b: Placed, rel: str, margin: float) -> bool:
    (ax, ay), (bx, by) = a.center, b.center
    return {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}[rel] >= margin


def _apart(p: Placed, q: Placed) -> bool:
    return (p.left + p.size + GAP <= q.left or q.left + q.size + GAP <= p.left
            or p.top + p.size + GAP <= q.top or q.top + q.size + GAP <= p.top)


def size_range(count: int) -> tuple[int, int]:
    """The smallest and largest side (px) of an object in a picture of `count` objects."""
    return (7, 11) if count <= 2 else (7, 9)


def layout(spec: dict[str, Any], rng: np.random.Generator, canvas: int = CANVAS) -> list[Placed]:
    """Random non-touching placement of the spec's objects satisfying its relation (rejection sampling)."""
    items = _expand(spec, rng)
    low, high = size_range(len(items))
    relation = spec.get("relation")
    for _ in range(MAX_TRIES):
        placed: list[Placed] = []
        for color, shape in items:
            size = int(rng.integers(low, high + 1))
            top = int(rng.integers(MARGIN, canvas - MARGIN - size + 1))
            left = int(rng.integers(MARGIN, canvas - MARGIN - size + 1))
            candidate = Placed(color, shape, top, left, size)
            if not all(_apart(candidate, other) for other in placed):
                break
            placed.append(candidate)
        else:
            if relation is None or _relation_holds(placed[relation["a"]], placed[relation["b"]], relation["rel"],
                                                   RELATION_MARGIN):
                return placed
    raise RuntimeError(f"could not place {spec} on a {canvas}px canvas in {MAX_TRIES} tries")


def draw(placed: list[Placed], canvas: int = CANVAS) -> np.ndarray:
    """uint8 (H, W, 3) picture of placed objects on black."""
    pixels = np.zeros((canvas, canvas, 3), dtype=np.uint8)
    for p in placed:
        mask = shape_mask(p.shape, p.size)
        region = pixels[p.top:p.top + p.size, p.left:p.left + p.size]
        region[mask] = PALETTE[p.color]
    return pixels


def render(spec: dict[str, Any], seed: int | np.random.Generator, canvas: int = CANVAS) -> Image.Image:
    """A ground-truth image of `spec`; the same (spec, seed) always gives the same pixels."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return Image.fromarray(draw(layout(spec, rng, canvas), canvas))
