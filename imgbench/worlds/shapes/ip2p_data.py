"""Training triples for `shapes-ip2p`: (source image, instruction from the edit grammar, edited image).

Instruct-Pix2Pix (Brooks et al., CVPR 2023) learns from (before, instruction, after) triples whose
unedited parts match. The shapes world makes them exactly: the checker finds each object of a source
image and its pixels (`checker.objects`), one edit of the grammar (`edits.Edit`) is drawn for that
scene, and the target is the source with only the named object changed — erased to the background,
recoloured pixel by pixel, redrawn as another shape in its box, or its pixels moved so that the named
relation holds. Sources are the shapes model's own drawings of train captions (what the editor is asked
to edit at test time, blobs and tints included) and clean renders of train captions, half each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from imgbench.worlds.shapes.checker import objects
from imgbench.worlds.shapes.edits import NOTHING, Edit
from imgbench.worlds.shapes.grammar import COLORS, RELATIONS, SHAPES, vocabulary
from imgbench.worlds.shapes.render import CANVAS, GAP, MARGIN, PALETTE, RELATION_MARGIN, shape_mask

KINDS = ("add", "remove", "recolor", "reshape", "move", "none")
TRIES = 200
GROW = np.ones((3, 3), dtype=bool)


def instruction_words() -> tuple[str, ...]:
    """Words of the edit grammar the caption tokenizer lacks (add, remove, make, put, ...), sorted."""
    known = set(vocabulary())
    texts = [NOTHING, "add a red circle", "add an red circle", "remove the red circle", "remove one circle",
             "make the red circle blue", "make the circle a square", "put the circle left of the square"]
    return tuple(sorted({w for text in texts for w in text.split()} - known))


@dataclass(frozen=True)
class Thing:
    """One object of a source image: its name in the grammar and its pixels (full-canvas mask)."""

    color: str
    shape: str
    mask: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive."""
        rows, cols = np.nonzero(self.mask.any(1))[0], np.nonzero(self.mask.any(0))[0]
        return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre, as the checker measures relations."""
        top, left, bottom, right = self.box
        return (left + right) / 2, (top + bottom) / 2


def things_of(pixels: np.ndarray) -> list[Thing]:
    """The checker's objects of an image; off-palette blobs stay in the pixels but have no name to edit."""
    return [Thing(d.color, d.shape, mask) for d, mask in objects(Image.fromarray(pixels))
            if d.color in COLORS and d.shape in SHAPES]


def _named(thing: Thing, things: list[Thing], rng: np.random.Generator) -> str | None:
    """The colour to name the object by: needed when another object shares its shape, else a coin flip."""
    shared = any(t is not thing and t.shape == thing.shape for t in things)
    return thing.color if shared or rng.random() < 0.5 else None


def _matching(things: list[Thing], color: str | None, shape: str) -> list[Thing]:
    return [t for t in things if t.shape == shape and color in (None, t.color)]


def _free_box(size: int, taken: list[tuple[int, int, int, int]], rng: np.random.Generator,
              accept: Any = None) -> tuple[int, int] | None:
    """(top, left) of a size×size box that keeps GAP px from every taken box (and passes `accept`), or None."""
    for _ in range(TRIES):
        top = int(rng.integers(MARGIN, CANVAS - MARGIN - size + 1))
        left = int(rng.integers(MARGIN, CANVAS - MARGIN - size + 1))
        bottom, right = top + size - 1, left + size - 1
        if all(bottom + GAP < t or b + GAP < top or right + GAP < lf or r + GAP < left for t, lf, b, r in taken) and \
                (accept is None or accept(top, left)):
            return top, left
    return None


def _grown(thing: Thing, others: list[Thing]) -> np.ndarray:
    """The object's pixels and its soft edge (its mask grown by a pixel), without another object's pixels."""
    keep = np.zeros_like(thing.mask)
    for other in others:
        keep |= other.mask
    return ndimage.binary_dilation(thing.mask, structure=GROW) & ~keep


def _erase(pixels: np.ndarray, thing: Thing, others: list[Thing]) -> None:
    """The object and its soft edge to the background, never another object's pixels."""
    pixels[_grown(thing, others)] = 0


def _stamp(pixels: np.ndarray, color: str, shape: str, top: int, left: int, size: int) -> None:
    region = pixels[top:top + size, left:left + size]
    region[shape_mask(shape, size)] = PALETTE[color]


def _box_size(thing: Thing) -> tuple[int, int, int]:
    """(top, left, size) of a square box centred on the object's box, inside the canvas."""
    top, left, bottom, right = thing.box
    size = int(np.clip(round((bottom - top + right - left + 2) / 2), 5, 12))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    clamp = CANVAS - MARGIN - size
    return (int(np.clip(round(cy - (size - 1) / 2), MARGIN, clamp)), int(np.clip(round(cx - (size - 1) / 2), MARGIN,
                                                                                    clamp)), size)


def sample_edit(pixels: np.ndarray, things: list[Thing], rng: np.random.Generator) -> tuple[Edit, np.ndarray] | None:
    """One random edit of the grammar for this image and the image after it, or None if the drawn kind does
    not apply (the caller draws again)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    out = pixels.copy()
    if kind == "none":
        return Edit("none"), out
    if kind == "add":
        color = COLORS[int(rng.integers(len(COLORS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        size = int(rng.integers(7, 10))
        spot = _free_box(size, [t.box for t in things], rng)
        if spot is None:
            return None
        _stamp(out, color, shape, *spot, size)
        return Edit("add", shape, color if rng.random() < 0.75 else None), out
    if not things:
        return None
    thing = things[int(rng.integers(len(things)))]
    others = [t for t in things if t is not thing]
    named = _named(thing, things, rng)
    if kind == "remove":
        _erase(out, thing, others)
        return Edit("remove", thing.shape, named), out
    if kind == "recolor":
        new = [c for c in COLORS if c != thing.color][int(rng.integers(len(COLORS) - 1))]
        grown = _grown(thing, others)
        old = np.array(PALETTE[thing.color], dtype=float)
        share = np.clip(out.astype(float) @ old / (old @ old), 0, 1)
        out[grown] = np.round(share[grown, None] * np.array(PALETTE[new], dtype=float)).astype(np.uint8)
        return Edit("recolor", thing.shape, named, new_color=new), out
    if kind == "reshape":
        new = [s for s in SHAPES if s != thing.shape][int(rng.integers(len(SHAPES) - 1))]
        _erase(out, thing, others)
        _stamp(out, thing.color, new, *_box_size(thing))
        return Edit("reshape", thing.shape, named, new_shape=new), out
    return _move(out, thing, others, rng)


def _move(out: np.ndarray, thing: Thing, others: list[Thing],
          rng: np.random.Generator) -> tuple[Edit, np.ndarray] | None:
    """"put the A rel the B": A's pixels moved to a free place where the relation holds by the renderer's margin."""
    anchors = [t for t in others if t.shape != thing.shape]
    if not anchors:
        return None
    anchor = anchors[int(rng.integers(len(anchors)))]
    rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
    top, left, bottom, right = thing.box
    height, width = bottom - top + 1, right - left + 1
    (ax, ay) = anchor.center

    def holds(new_top: int, new_left: int) -> bool:
        x, y = new_left + (width - 1) / 2, new_top + (height - 1) / 2
        offset = {"left of": ax - x, "right of": x - ax, "above": ay - y, "below": y - ay}[rel]
        inside = new_top + height <= CANVAS - MARGIN and new_left + width <= CANVAS - MARGIN
        return offset >= RELATION_MARGIN and inside

    spot = _free_box(max(height, width), [t.box for t in others], rng, accept=holds)
    if spot is None:
        return None
    grown = _grown(thing, others)
    patch = np.where(grown[..., None], out, 0)
    _erase(out, thing, others)
    shifted_mask = np.roll(grown, (spot[0] - top, spot[1] - left), axis=(0, 1))
    shifted = np.roll(patch, (spot[0] - top, spot[1] - left), axis=(0, 1))
    out[shifted_mask] = shifted[shifted_mask]
    return Edit("move", thing.shape, rel=rel, other=anchor.shape), out


def make_triple(pixels: np.ndarray, things: list[Thing], rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(instruction, target) for one source image: edits are drawn until one applies ("nothing to change"
    always does)."""
    while True:
        made = sample_edit(pixels, things, rng)
        if made is not None:
            return made[0].text(), made[1]
