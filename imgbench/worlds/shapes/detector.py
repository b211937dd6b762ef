"""`shapes-detector`: a learned open-set detector for the shapes world (SLD's detector and SAM in one).

SLD (Wu et al., 2024, §3.1) reads a generated image with an open-vocabulary detector and segments each
box with SAM. On the shapes world the exact checker already reads images, but it is the world's judge: a
method that consulted it would grade its own homework. So SLD gets a small fully-convolutional network
that labels every pixel with a colour (or background) and a shape, trained on the checker's masks of
*training* drawings and renders only; objects are the connected components of one predicted colour, as
the checker finds them. `oracle` is the checker's own reading in the same type: the labelled upper bound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from imgbench.errors import UserError
from imgbench.worlds.shapes import checker
from imgbench.worlds.shapes.grammar import COLORS, SHAPES
from imgbench.worlds.shapes.render import CANVAS

SHIPPED = Path(__file__).parent / "weights" / "detector"
TRAIN_COMMAND = ("imgbench train shapes detector --workdir W --generated /work/shapes-train/llava-data.npz "
                 "--export")
IGNORE = -100
"""Target of pixels the loss skips: off-palette blobs (no name in the grammar) and non-object pixels' shape."""


@dataclass(frozen=True, eq=False)
class Found:
    """One object: what SLD's detector returns (name, box, confidence) plus SAM's mask (compared by identity:
    an array field has no truth value)."""

    color: str
    shape: str
    box: tuple[float, float, float, float]
    """[x, y, w, h] as fractions of the 32×32 canvas (the mask's extent)."""
    score: float
    mask: np.ndarray
    """(32, 32) bool."""

    def to_json(self) -> dict[str, Any]:
        return {"color": self.color, "shape": self.shape, "box": [round(v, 4) for v in self.box],
                "score": round(self.score, 4)}


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return (cols[0] / CANVAS, rows[0] / CANVAS, (cols[-1] - cols[0] + 1) / CANVAS, (rows[-1] - rows[0] + 1) / CANVAS)


def canvas_pixels(image: Image.Image) -> np.ndarray:
    """uint8 (32, 32, 3), resampled as the checker does, so detector and checker read the same pixels."""
    image = image.convert("RGB")
    if image.size != (CANVAS, CANVAS):
        image = image.resize((CANVAS, CANVAS), Image.Resampling.BOX)
    return np.asarray(image)


def targets(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (colour, shape) targets from the checker's objects: colour 0 is background and 1-4 index
    COLORS; an off-palette object's pixels are IGNORE for both, and so is every non-object pixel's shape."""
    color = np.zeros(pixels.shape[:2], dtype=np.int64)
    shape = np.full(pixels.shape[:2], IGNORE, dtype=np.int64)
    for detection, mask in checker.objects(Image.fromarray(pixels)):
        named = detection.color in COLORS and detection.shape in SHAPES
        color[mask] = COLORS.index(detection.color) + 1 if named else IGNORE
        shape[mask] = SHAPES.index(detection.shape) if named else IGNORE
    return color, shape


def build_net(width: int = 16) -> Any:
    """A two-level U-Net at full resolution: 5 colour logits (background + COLORS) then 3 shape logits per
    pixel. Its receptive field (about 24 px) spans the largest object, which a shape's call needs."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down1, self.down2 = block(3, width), block(width, 2 * width)
            self.bottom = block(2 * width, 2 * width)
            self.up2, self.up1 = block(4 * width, width), block(2 * width, width)
            self.head = nn.Conv2d(width, 1 + len(COLORS) + len(SHAPES), 1)

        def forward(self, x: Any) -> Any:
            a = self.down1(x)
            b = self.down2(nn.functional.max_pool2d(a, 2))
            c = self.bottom(nn.functional.max_pool2d(b, 2))
            b = self.up2(torch.cat([b, nn.functional.interpolate(c, scale_factor=2.0)], 1))
            return self.head(self.up1(torch.cat([a, nn.functional.interpolate(b, scale_factor=2.0)], 1)))

    return UNet()


def to_input(pixels: np.ndarray) -> Any:
    """uint8 (N, 32, 32, 3) → float (N, 3, 32, 32) in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div(255.0)


def read_objects(logits: np.ndarray) -> list[Found]:
    """Objects from one image's (8, 32, 32) logits: components of one predicted colour of at least the
    checker's MIN_AREA; shape from the component's mean shape logits; score its mean foreground probability."""
    color_logits = logits[:1 + len(COLORS)]
    probs = np.exp(color_logits - color_logits.max(0))
    probs /= probs.sum(0)
    labels = probs.argmax(0)
    found = []
    for index, name in enumerate(COLORS, start=1):
        components, count = ndimage.label(labels == index)
        for k in range(1, count + 1):
            mask = components == k
            if mask.sum() < checker.MIN_AREA:
                continue
            shape = SHAPES[int(logits[1 + len(COLORS):, mask].mean(1).argmax())]
            found.append(Found(name, shape, box_of(mask), float(1.0 - probs[0, mask].mean()), mask))
    return sorted(found, key=lambda f: (f.box[0], f.box[1]))


class ShapesDetector:
    """The shipped (or any exported) detector; `calls` counts forward passes, as SLD's cost accounting needs."""

    def __init__(self, path: Path | None = None) -> None:
        from safetensors.torch import load_file

        self.path = Path(path) if path is not None else SHIPPED
        weights = self.path / "model.safetensors"
        if not weights.is_file() or not (self.path / "config.json").is_file():
            raise UserError(f"no shapes detector in {self.path} (config.json + model.safetensors); train and "
                            f"export it with `{TRAIN_COMMAND}`.")
        self.config = json.loads((self.path / "config.json").read_text())
        self.net = build_net(self.config["width"]).eval()
        self.net.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
        self._digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"name": "shapes-detector", "sha256": self._digest}

    def detect(self, images: Sequence[Image.Image]) -> list[list[Found]]:
        """Objects per image; fixed-size chunks keep each image's result independent of its batch."""
        import torch

        from imgbench.worlds.shapes.model import CHUNK, fixed_chunks

        if not images:
            return []
        pixels = np.stack([canvas_pixels(image) for image in images])
        with torch.no_grad():
            logits = fixed_chunks(self.net, to_input(pixels)).numpy()
        self.calls += -(-len(images) // CHUNK)
        return [read_objects(row) for row in logits]


def oracle(images: Sequence[Image.Image]) -> list[list[Found]]:
    """The checker's reading as `Found`s (score 1): what a perfect detector would return."""
    return [[Found(d.color, d.shape, box_of(mask), 1.0, mask) for d, mask in checker.objects(image)]
            for image in images]
