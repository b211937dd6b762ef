"""SLD's planner on the shapes world (`planner=shapes-grammar`): a deterministic rule in place of the LLM.

It has the LLM planner's interface (planner.py: `parse`, `correct`, `identity`, `calls`, `cache_dir`) and, like
an LLM, reads the prompt's text only, never the task's spec:

parse — the caption read with the world's grammar (the text of every caption `grammar.all_captions()` can
    say, inverted): one object per shape with one attribute slot (its colour or None) per instance; background
    "" (the world has none, so the re-generation prompt is the caption itself); no negation. A text the grammar
    cannot say gets no parse (`fallback: "no correction"`, the image is kept).
correct — the detections ("red circle #1", box [x, y, w, h] in [0, 1]) → the corrected layout:
    1. keep: the caption's slots take detections of their shape and colour (colour-specific slots first, then
       slots of any colour; the highest score, then the first name, wins), each kept as named and boxed;
    2. attribute: a coloured slot still empty takes a free detection of its shape in another colour, renamed
       "<colour> <shape> #k" with the same box (operations.diff makes it an attribute change);
    3. delete: every detection left over is dropped;
    4. add: each slot still empty gets "<colour> <shape> #k" ("<shape> #k" when the caption names no colour) in a
       square box of the renderer's middle size for the caption's object count (render.size_range), at the
       free place farthest from the other boxes (≥ render.GAP px apart, render.MARGIN px in), on even pixels
       because a latent cell is 2×2 pixels;
    5. reposition: when the caption's relation fails on the boxes (centre offset under render.RELATION_MARGIN),
       its second object moves to the nearest place where it holds and the box stays free; else the first
       object moves, relative to the second; else both move (the first to the nearest place from which the
       second can satisfy it, the second to its nearest such place).
    New names take the smallest #k no detection or kept object uses, so diff never mistakes them for a move.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgbench.methods.sld.operations import base_name
from imgbench.methods.sld.planner import Parse

from imgbench.worlds.shapes import render
from imgbench.worlds.shapes.grammar import COLORS, all_captions, words_of

VERSION = 1
Box = tuple[int, int, int, int]  # left, top, width, height in pixels


@functools.cache
def _captions() -> dict[str, dict[str, Any]]:
    """Caption text (as the world reads it) → spec: the grammar's own sentences, inverted."""
    return {" ".join(words_of(caption)): spec for rows in all_captions().values() for caption, spec, _ in rows}


def read_caption(text: str) -> dict[str, Any] | None:
    return _captions().get(" ".join(words_of(text)))


@dataclass
class _Item:
    name: str
    box: Box
    shape: str
    color: str | None
    given: list[float] | None = None
    """The detector's box as it was given, while the box is unchanged (diff compares boxes exactly)."""


def _pixels(box: Any) -> Box:
    return tuple(round(v * render.CANVAS) for v in box)  # type: ignore[return-value]


def _unit(box: Box) -> list[float]:
    return [v / render.CANVAS for v in box]


def _centre(box: Box) -> tuple[float, float]:
    return box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2


def _holds(a: Box, b: Box, rel: str) -> bool:
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    offset = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}[rel]
    return offset >= render.RELATION_MARGIN


def _apart(a: Box, b: Box) -> bool:
    gap = render.GAP
    return a[0] + a[2] + gap <= b[0] or b[0] + b[2] + gap <= a[0] or a[1] + a[3] + gap <= b[1] \
        or b[1] + b[3] + gap <= a[1]


def _places(width: int, height: int) -> list[Box]:
    """Every in-canvas box of this size on even pixels, in raster order."""
    first = render.MARGIN + render.MARGIN % 2
    return [(left, top, width, height) for top in range(first, render.CANVAS - render.MARGIN - height + 1, 2)
            for left in range(first, render.CANVAS - render.MARGIN - width + 1, 2)]


def _free_place(size: int, others: list[Box]) -> Box:
    """The free box farthest from the others' centres (the first in raster order on ties)."""
    def clearance(box: Box) -> float:
        x, y = _centre(box)
        return min(((x - ox) ** 2 + (y - oy) ** 2 for ox, oy in map(_centre, others)), default=0.0)

    free = [b for b in _places(size, size) if all(_apart(b, o) for o in others)] or _places(size, size)
    return max(free, key=clearance)


def _move(box: Box, partner: Box, rel: str, others: list[Box], first: bool) -> Box | None:
    """The nearest place for `box` where the relation holds (`first`: box is the relation's first object)."""
    fits = [b for b in _places(box[2], box[3]) if all(_apart(b, o) for o in others)
            and (_holds(b, partner, rel) if first else _holds(partner, b, rel))]
    return min(fits, key=lambda b: (b[0] - box[0]) ** 2 + (b[1] - box[1]) ** 2) if fits else None


@dataclass
class ShapesPlanner:
    """The shapes world's rule planner (module docstring); `calls` counts rule evaluations (free, no model)."""

    cache_dir: Path | None = None
    calls: int = field(default=0, init=False)

    def identity(self) -> dict[str, Any]:
        return {"planner": "shapes-grammar", "version": VERSION}

    def parse(self, prompt: str) -> tuple[Parse | None, dict[str, Any]]:
        self.calls += 1
        spec = read_caption(prompt)
        if spec is None:
            return None, {"rule": "shapes-grammar", "errors": ["not a caption of the shapes grammar"],
                          "fallback": "no correction"}
        objects = [{"name": o["shape"], "count": int(o.get("count", 1)),
                    "attributes": [o.get("color")] * int(o.get("count", 1))} for o in spec["objects"]]
        return Parse(objects, background="", negation=None), {"rule": "shapes-grammar", "relation": spec["relation"],
                                                              "fallback": None}

    def correct(self, prompt: str, parse: Parse, detections: list[dict[str, Any]]) -> tuple[
            list[dict[str, Any]] | None, dict[str, Any]]:
        self.calls += 1
        spec = read_caption(prompt)
        if spec is None:
            return None, {"rule": "shapes-grammar", "errors": ["not a caption of the shapes grammar"],
                          "fallback": "no correction"}
        found = [_Item(d["name"], _pixels(d["box"]), *_read_name(d["name"]), list(d["box"])) for d in detections]
        order = sorted(range(len(found)), key=lambda i: (-detections[i].get("score", 1.0), found[i].name))
        slots = [(i, o["shape"], o.get("color")) for i, o in enumerate(spec["objects"])
                 for _ in range(int(o.get("count", 1)))]
        taken: dict[int, int] = {}  # slot → detection
        decisions: list[str] = []
        for colored in (True, False):
            for s, (_, shape, color) in enumerate(slots):
                if (color is not None) != colored:
                    continue
                pick = next((j for j in order if j not in taken.values() and found[j].shape == shape
                             and color in (None, found[j].color)), None)
                if pick is not None:
                    taken[s] = pick
        used = {f.name for f in found}
        layout: dict[int, _Item] = {s: found[j] for s, j in taken.items()}
        for s, (_, shape, color) in enumerate(slots):
            if s in layout or color is None:
                continue
            pick = next((j for j in order if j not in taken.values() and found[j].shape == shape), None)
            if pick is not None:
                taken[s] = pick
                layout[s] = _Item(_new_name(f"{color} {shape}", used), found[pick].box, shape, color,
                                  found[pick].given)
                decisions.append(f"attribute: {found[pick].name} → {layout[s].name}")
        decisions += [f"delete: {found[j].name}" for j in order if j not in taken.values()]
        low, high = render.size_range(len(slots))
        for s, (_, shape, color) in enumerate(slots):
            if s not in layout:
                phrase = f"{color} {shape}" if color else shape
                box = _free_place((low + high) // 2, [item.box for item in layout.values()])
                layout[s] = _Item(_new_name(phrase, used), box, shape, color)
                decisions.append(f"add: {layout[s].name} at {box}")
        relation = spec.get("relation")
        if relation:
            decisions += _fix_relation(layout, slots, relation)
        result = [{"name": item.name, "box": item.given or _unit(item.box)} for _, item in sorted(layout.items())]
        return result, {"rule": "shapes-grammar", "decisions": decisions, "fallback": None}


def _read_name(name: str) -> tuple[str, str | None]:
    """("shape", "colour" or None) from a detection name such as "red circle #1"."""
    words = base_name(name).split()
    return words[-1] if words else "", next((w for w in words[:-1] if w in COLORS), None)


def _new_name(phrase: str, used: set[str]) -> str:
    k = 1
    while f"{phrase} #{k}" in used:
        k += 1
    used.add(f"{phrase} #{k}")
    return f"{phrase} #{k}"


def _fix_relation(layout: dict[int, _Item], slots: list[tuple[int, str, str | None]],
                  relation: dict[str, Any]) -> list[str]:
    """Rule step 5: move the relation's second object (else its first) so the relation holds."""
    first = {obj: next(s for s, slot in enumerate(slots) if slot[0] == obj) for obj in (relation["a"], relation["b"])}
    a, b, rel = layout[first[relation["a"]]], layout[first[relation["b"]]], relation["rel"]
    if _holds(a.box, b.box, rel):
        return []
    for mover, partner, is_first in ((b, a, False), (a, b, True)):
        others = [item.box for item in layout.values() if item is not mover]
        box = _move(mover.box, partner.box, rel, others, is_first)
        if box is not None:
            mover.box, mover.given = box, None
            return [f"reposition: {mover.name} to {box} ({a.name} {rel} {b.name})"]
    others = [item.box for item in layout.values() if item is not a and item is not b]
    for box_a in sorted((p for p in _places(a.box[2], a.box[3]) if all(_apart(p, o) for o in others)),
                        key=lambda p: (p[0] - a.box[0]) ** 2 + (p[1] - a.box[1]) ** 2):
        box_b = _move(b.box, box_a, rel, [*others, box_a], False)
        if box_b is not None:
            a.box, a.given, b.box, b.given = box_a, None, box_b, None
            return [f"reposition: {a.name} to {box_a} and {b.name} to {box_b} ({a.name} {rel} {b.name})"]
    return [f"relation {rel} cannot be met: left as it is"]
