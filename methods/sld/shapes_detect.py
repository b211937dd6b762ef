"""SLD's detect, mask and locate steps on the shapes world, over any detector with `detect(images)`.

Detectors (`--method-arg detector=...`): `oracle` reads the objects off the world's exact checker
(`imgbench.worlds.shapes.detector.oracle`): an upper bound, labelled so in the run identity; `shapes-detector`
is the world's learned detector (`ShapesDetector`, trained on drawings with the method-part seeds, DESIGN §8).
Each found object's own pixel mask is its mask (no SAM: the world's objects are flat, hard-edged blobs).
Names are "<colour> <shape> #k", k by descending score, then left to right, within the phrase.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DETECTORS = ("oracle", "shapes-detector")


class OracleDetector:
    """The checker's objects as detections (score 1): what SLD could do with a perfect detector."""

    def __init__(self) -> None:
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"detector": "oracle", "upper_bound": True, "source": "imgbench.worlds.shapes.checker.objects"}

    def detect(self, images: Sequence[Any]) -> list[list[Any]]:
        from imgbench.worlds.shapes.detector import oracle

        self.calls += 1
        return oracle(images)


def build_detector(name: str, path: str | None = None) -> Any:
    """`oracle` or the learned `shapes-detector` (imported only when asked for)."""
    if name == "oracle":
        return OracleDetector()
    from imgbench.worlds.shapes.detector import ShapesDetector

    return ShapesDetector(path)


def phrase(color: str, shape: str) -> str:
    return " ".join(dict.fromkeys((color, shape)))  # "red circle"; an unreadable blob is just "other"


class ShapesFinder:
    """Named detections, their masks, and an added object located in its own image."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self._masks: dict[str, Any] = {}

    @property
    def calls(self) -> int:
        return int(self.detector.calls)

    def identity(self) -> dict[str, Any]:
        return dict(self.detector.identity())

    def find(self, image: Any) -> list[dict[str, Any]]:
        """[{name, box, score}] for SLD's planner; the masks are kept for `masks`."""
        (found,) = self.detector.detect([image])
        found = sorted(found, key=lambda f: (-f.score, f.box[0], f.box[1]))
        counts: dict[str, int] = {}
        out, self._masks = [], {}
        for item in found:
            words = phrase(item.color, item.shape)
            counts[words] = counts.get(words, 0) + 1
            name = f"{words} #{counts[words]}"
            self._masks[name] = item.mask
            out.append({"name": name, "box": [float(v) for v in item.box], "score": round(float(item.score), 4)})
        return out

    def masks(self, detections: list[dict[str, Any]]) -> list[Any]:
        """Boolean (32, 32) pixel masks of the last `find`'s detections."""
        return [self._masks[d["name"]] for d in detections]

    def locate(self, image: Any, name: str) -> tuple[list[float], Any] | None:
        """The best-scoring object of `name`'s shape (and colour, if named) in an image of it alone."""
        words = name.split()
        (found,) = self.detector.detect([image])
        fits = [f for f in found if f.shape == words[-1] and (len(words) == 1 or f.color == words[0])]
        if not fits:
            return None
        best = max(fits, key=lambda f: f.score)
        return [float(v) for v in best.box], best.mask
