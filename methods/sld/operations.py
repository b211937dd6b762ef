"""From (detected layout, corrected layout) to SLD's four latent operations (Wu et al., CVPR 2024, §3.3).

The original's matching rule (`Detector.parse_list`), with names "white car #1" and boxes [x, y, w, h]:
- a name in both layouts with the same box is preserved; with another box it is *repositioned*;
- a name only in the detected layout is *deleted*, unless an attribute change claims its box;
- a name only in the corrected layout is an *attribute change* of a detected object when their nouns match
  and the boxes overlap with IoU > `iou_threshold` (0.9), else an *addition*.
The noun of a name is its last word once the "#k" suffix is gone ("white car #1" → "car").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imgbench.util.boxes import xywh_iou

IOU_THRESHOLD = 0.9
KINDS = ("delete", "reposition", "attribute", "add")


@dataclass(frozen=True)
class Operation:
    """One edit: `kind` in KINDS; `name` the detected object (delete, reposition, attribute) or the added one;
    `new_name` the changed name (attribute); boxes [x, y, w, h] normalised."""

    kind: str
    name: str
    old_box: tuple[float, ...] | None = None
    new_box: tuple[float, ...] | None = None
    new_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v is not None}


def base_name(name: str) -> str:
    """"white car #2" → "white car"."""
    return name.split("#")[0].strip()


def noun(name: str) -> str:
    words = base_name(name).lower().split()
    return words[-1] if words else ""


def diff(detected: list[dict[str, Any]], corrected: list[dict[str, Any]],
         iou_threshold: float = IOU_THRESHOLD) -> list[Operation]:
    """The operations that turn `detected` into `corrected` (each a list of {name, box}); [] means nothing to do."""
    old = {d["name"]: tuple(d["box"]) for d in detected}
    new = {d["name"]: tuple(d["box"]) for d in corrected}
    ops: list[Operation] = []
    for name, box in new.items():
        if name in old and not _same(old[name], box):
            ops.append(Operation("reposition", name, old[name], box))
    claimed: set[str] = set()
    for name, box in new.items():
        if name in old:
            continue
        match = next((o for o, obox in old.items() if o not in new and o not in claimed and noun(o) == noun(name)
                      and xywh_iou(obox, box) > iou_threshold), None)
        if match is not None:
            claimed.add(match)
            ops.append(Operation("attribute", match, old[match], box, new_name=name))
        else:
            ops.append(Operation("add", name, None, box))
    ops += [Operation("delete", name, box) for name, box in old.items() if name not in new and name not in claimed]
    return sorted(ops, key=lambda op: KINDS.index(op.kind))


def _same(a: tuple[float, ...], b: tuple[float, ...], tol: float = 1e-3) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))
