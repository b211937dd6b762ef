"""The edit-instruction grammar of the shapes world, and which single edits fix a checker diff.

`shapes-llava` answers "How to make the image match the prompt: {prompt}?" with one instruction
from this grammar — the analogue of the IMG paper's LLaVA finetune (Guo et al., 2025, §3.2) whose
answers name a concrete fix. Instructions parse into a structured `Edit`; an edit is a *valid
fix* for an image when, applied to what the checker detected, it shrinks the distance to the spec
(or, when only the relation is wrong, puts the right objects in the right relation).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from imgbench.worlds.shapes.grammar import COLORS, RELATIONS, SHAPES

NOTHING = "nothing to change"
_C, _S, _R = "|".join(COLORS), "|".join(SHAPES), "|".join(RELATIONS)
PATTERNS = {
    "add": re.compile(rf"^add an? (?:(?P<color>{_C}) )?(?P<shape>{_S})$"),
    "remove": re.compile(rf"^remove (?:one|the) (?:(?P<color>{_C}) )?(?P<shape>{_S})$"),
    "recolor": re.compile(rf"^make the (?:(?P<color>{_C}) )?(?P<shape>{_S}) (?P<new_color>{_C})$"),
    "reshape": re.compile(rf"^make the (?:(?P<color>{_C}) )?(?P<shape>{_S}) an? (?P<new_shape>{_S})$"),
    "move": re.compile(rf"^put the (?P<shape>{_S}) (?P<rel>{_R}) the (?P<other>{_S})$"),
}


@dataclass(frozen=True)
class Edit:
    kind: str
    """add | remove | recolor | reshape | move | none."""
    shape: str | None = None
    color: str | None = None
    new_color: str | None = None
    new_shape: str | None = None
    rel: str | None = None
    other: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def text(self) -> str:
        """The instruction in the grammar (what the MLLM is trained to say)."""
        color = f"{self.color} " if self.color else ""
        return {"none": NOTHING, "add": f"add a {color}{self.shape}", "remove": f"remove the {color}{self.shape}",
                "recolor": f"make the {color}{self.shape} {self.new_color}",
                "reshape": f"make the {color}{self.shape} a {self.new_shape}",
                "move": f"put the {self.shape} {self.rel} the {self.other}"}[self.kind]


def parse(instruction: str) -> Edit | None:
    """The structured edit of an instruction, or None if it is outside the grammar."""
    text = " ".join(instruction.lower().strip().rstrip(".").split())
    if text == NOTHING:
        return Edit("none")
    for kind, pattern in PATTERNS.items():
        match = pattern.match(text)
        if match:
            return Edit(kind, **{k: v for k, v in match.groupdict().items() if v})
    return None


Scene = list[tuple[str, str]]
"""(colour, shape) per detected object."""


def distance(scene: Scene, spec: dict[str, Any]) -> int:
    """Unmatched spec slots + unmatched objects (colour-specific slots matched first, as the checker does)."""
    free = Counter(scene)
    unmatched = 0
    slots = [(o.get("color"), o["shape"]) for o in spec["objects"] for _ in range(int(o.get("count", 1)))]
    for color, shape in sorted(slots, key=lambda s: s[0] is None):
        pick = next((k for k in sorted(free) if free[k] and k[1] == shape and color in (None, k[0])), None)
        if pick is None:
            unmatched += 1
        else:
            free[pick] -= 1
    return unmatched + sum(free.values())


def apply(edit: Edit, scene: Scene) -> Scene | None:
    """The scene after the edit, or None if the edit names an object the scene does not have."""
    def find(color: str | None, shape: str | None) -> int | None:
        return next((i for i, (c, s) in enumerate(scene) if s == shape and color in (None, c)), None)

    out = list(scene)
    if edit.kind == "add":
        return out + [(edit.color or COLORS[0], edit.shape)]
    index = find(edit.color, edit.shape)
    if index is None:
        return None
    if edit.kind == "remove":
        return out[:index] + out[index + 1:]
    if edit.kind == "recolor":
        out[index] = (edit.new_color, out[index][1])
    elif edit.kind == "reshape":
        out[index] = (out[index][0], edit.new_shape)
    return out


def is_valid_fix(edit: Edit | None, scene: Scene, spec: dict[str, Any], position_ok: bool = True) -> bool:
    """Whether one edit is a valid single step toward the spec for an image whose objects are `scene`.

    An unspecified colour in an `add` is judged as the colour the spec wants (any colour if none).
    """
    if edit is None:
        return False
    before = distance(scene, spec)
    if edit.kind == "none":
        return before == 0 and position_ok
    if edit.kind == "move":
        rel = spec.get("relation")
        if not rel or before != 0 or position_ok:
            return False
        a, b = spec["objects"][rel["a"]]["shape"], spec["objects"][rel["b"]]["shape"]
        return (edit.shape, edit.rel, edit.other) == (a, rel["rel"], b)
    if edit.kind == "add" and edit.color is None:
        wanted = {o.get("color") for o in spec["objects"] if o["shape"] == edit.shape}
        edit = Edit("add", edit.shape, next(iter(sorted(c for c in wanted if c)), None) or COLORS[0])
    after = apply(edit, scene)
    return after is not None and distance(after, spec) < before
