"""Whether each SLD operation's intended change shows in the final image, read by the shapes world's checker.

A measurement only: it runs after the method has finished an item and never feeds back into it. Per operation
(names "red circle #1"; a name without a colour matches any colour; boxes [x, y, w, h] in [0, 1]):
- delete: no object of that colour and shape has its centre inside the old box;
- add: an object of that colour and shape has its centre inside the new box grown by `TOLERANCE` px;
- reposition: an object of that colour and shape has its centre within `TOLERANCE` px of the new box's centre
  (each axis);
- attribute: an object of the new colour and shape has its centre within `TOLERANCE` px of the box's centre.
"""

from __future__ import annotations

from typing import Any

from imgbench.methods.sld.operations import Operation, base_name

from imgbench.worlds.shapes.grammar import COLORS
from imgbench.worlds.shapes.render import CANVAS

TOLERANCE = 3.0


def _wants(name: str) -> tuple[str | None, str]:
    words = base_name(name).split()
    return (words[0] if len(words) > 1 and words[0] in COLORS else None), words[-1]


def _centre(box: Any) -> tuple[float, float]:
    x, y, w, h = (v * CANVAS for v in box)
    return x + (w - 1) / 2, y + (h - 1) / 2


def _inside(point: tuple[float, float], box: Any, grow: float) -> bool:
    x, y, w, h = (v * CANVAS for v in box)
    return x - grow <= point[0] <= x + w - 1 + grow and y - grow <= point[1] <= y + h - 1 + grow


def _near(point: tuple[float, float], target: tuple[float, float]) -> bool:
    return abs(point[0] - target[0]) <= TOLERANCE and abs(point[1] - target[1]) <= TOLERANCE


def check(operation: Operation, image: Any) -> bool:
    from imgbench.worlds.shapes.checker import detect

    return _shows(operation, detect(image))


def _shows(operation: Operation, found: list[Any]) -> bool:
    """Whether `operation`'s change shows among the checker's detections `found` of the image after it."""
    color, shape = _wants(operation.new_name or operation.name)
    matching = [(d.x, d.y) for d in found if d.shape == shape and color in (None, d.color)]
    if operation.kind == "delete":
        return not any(_inside(p, operation.old_box, 0.0) for p in matching)
    if operation.kind == "add":
        return any(_inside(p, operation.new_box, TOLERANCE) for p in matching)
    return any(_near(p, _centre(operation.new_box)) for p in matching)


def check_all(operations: list[Operation], image: Any, round_index: int) -> list[dict[str, Any]]:
    """One record per operation: its JSON, the round, and whether the change shows (the image read once)."""
    from imgbench.worlds.shapes.checker import detect

    found = detect(image)
    return [{**op.to_json(), "round": round_index, "ok": _shows(op, found)} for op in operations]
