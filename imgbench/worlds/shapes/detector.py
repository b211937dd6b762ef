"""Objects found in shapes-world images, as a detector reports them: colour, shape, box, score and pixel mask.

`oracle` reads them off the exact checker (`checker.objects`): the upper bound a learned detector is measured
against (SLD's `detector=oracle` row). The learned `ShapesDetector` lives beside it in this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imgbench.worlds.shapes import checker


@dataclass(frozen=True)
class Found:
    """One object: colour and shape names, box [x, y, w, h] in [0, 1] (the mask's extent), score, (32, 32) mask."""

    color: str
    shape: str
    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """[x, y, w, h] in [0, 1] of a mask's extent on its canvas."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    height, width = mask.shape
    return (cols[0] / width, rows[0] / height, (cols[-1] - cols[0] + 1) / width, (rows[-1] - rows[0] + 1) / height)


def oracle(images: Sequence[Image.Image]) -> list[list[Found]]:
    """The checker's objects per image (score 1.0): exact, so an upper bound for any learned detector."""
    return [[Found(d.color, d.shape, box_of(mask), 1.0, mask) for d, mask in checker.objects(image)]
            for image in images]
