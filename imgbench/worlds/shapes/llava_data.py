"""Training examples for `shapes-llava`: misaligned scenes and the instruction that fixes them.

A train caption's scene is drawn exactly, then (80% of the time) broken by one error — an object
dropped, an extra object, a wrong colour, a wrong shape, or the relation reversed — so the checker's
diff between image and prompt is exactly one edit, whose instruction is the target. The base
variant (`shapes-llava-base`) is trained only to caption the scene it sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imgbench.worlds.shapes.edits import NOTHING, Edit
from imgbench.worlds.shapes.grammar import COLORS, CONVERSE, NUMBER_WORDS, PLURALS, SHAPES, spec_of
from imgbench.worlds.shapes.render import draw, layout

QUESTION = "How to make the image match the prompt: {prompt}?"
CAPTION_QUESTION = "Describe the image."


def _scene(spec: dict[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Explicit objects (every colour chosen) of a spec, one entry per object."""
    return [{"shape": o["shape"], "color": o.get("color") or COLORS[int(rng.integers(len(COLORS)))], "count": 1}
            for o in spec["objects"] for _ in range(int(o.get("count", 1)))]


def caption_of(objects: list[dict[str, Any]]) -> str:
    """A canonical caption of explicit objects: 'two red circles and a blue square'."""
    groups: dict[tuple[str, str], int] = {}
    for o in objects:
        groups[(o["color"], o["shape"])] = groups.get((o["color"], o["shape"]), 0) + 1
    parts = [f"a {c} {s}" if n == 1 else f"{NUMBER_WORDS[n]} {c} {PLURALS[s]}" for (c, s), n in groups.items()]
    return " and ".join(parts) if parts else "nothing"


def corrupt(spec: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], Edit]:
    """A drawable spec with one error relative to `spec`, and the edit that undoes it."""
    objects = _scene(spec, rng)
    relation = spec.get("relation")
    kinds = ["none", "add", "remove", "reshape"] + (["recolor"] if any(o.get("color") for o in spec["objects"])
                                                     else []) + (["move"] if relation else [])
    kind = kinds[int(rng.integers(len(kinds)))] if rng.random() < 0.8 else "none"
    index = int(rng.integers(len(objects)))
    target = objects[index]
    specified = spec["objects"][_owner(spec, index)].get("color")
    if kind == "add" and len(objects) > 1:  # drop an object; the fix adds it back
        del objects[index]
        return spec_of("scene", objects), Edit("add", target["shape"], specified)
    if kind == "remove" and len(objects) < 4:  # an extra object; the fix removes it
        extra = {"shape": SHAPES[int(rng.integers(len(SHAPES)))], "color": COLORS[int(rng.integers(len(COLORS)))],
                 "count": 1}
        return spec_of("scene", objects + [extra]), Edit("remove", extra["shape"], extra["color"])
    if kind == "recolor" and specified:
        wrong = [c for c in COLORS if c != specified][int(rng.integers(len(COLORS) - 1))]
        objects[index] = {**target, "color": wrong}
        return spec_of("scene", objects), Edit("recolor", target["shape"], wrong, new_color=specified)
    if kind == "reshape":
        wrong = [s for s in SHAPES if s != target["shape"]][int(rng.integers(len(SHAPES) - 1))]
        objects[index] = {**target, "shape": wrong}
        return spec_of("scene", objects), Edit("reshape", wrong, target["color"], new_shape=target["shape"])
    if kind == "move":
        a, b = spec["objects"][relation["a"]]["shape"], spec["objects"][relation["b"]]["shape"]
        flipped = {**relation, "rel": CONVERSE[relation["rel"]]}
        return spec_of("scene", objects, flipped), Edit("move", a, rel=relation["rel"], other=b)
    return spec_of("scene", objects, relation), Edit("none")


def _owner(spec: dict[str, Any], index: int) -> int:
    """Which spec object the index-th expanded object came from."""
    bounds = np.cumsum([int(o.get("count", 1)) for o in spec["objects"]])
    return int(np.searchsorted(bounds, index, side="right"))


def example(caption: str, spec: dict[str, Any], rng: np.random.Generator,
            base: bool = False) -> tuple[np.ndarray, str, str]:
    """(uint8 image, question, target answer) for the finetuned or the caption-only (base) model."""
    scene, edit = corrupt(spec, rng)
    pixels = draw(layout(scene, rng))
    if base:
        return pixels, CAPTION_QUESTION, caption_of(scene["objects"])
    return pixels, QUESTION.format(prompt=caption), edit.text() if edit.kind != "none" else NOTHING
