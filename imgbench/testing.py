"""Fakes that exercise the whole pipeline without torch: the `dummy` model, method and scorer, and render pairs.

They live in the package (not in tests/) so plugin authors can test against them too. Images are
deterministic functions of (prompt text, seed); an optional per-image delay lets tests interrupt
a run mid-way and lets the overhead benchmark mimic a real generator's cost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest, Prompt, ScoreResult
from imgbench.api.scorer import Scorer
from imgbench.util.hashing import stable_int


def hash_image(text: str, seed: int, height: int, width: int) -> Image.Image:
    """A deterministic picture: a colour field with a few rectangles, all drawn from hash(text, seed)."""
    rng = np.random.default_rng(stable_int(text, seed))
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = rng.integers(0, 256, size=3, dtype=np.uint8)
    for _ in range(3):
        top, left = rng.integers(0, height), rng.integers(0, width)
        pixels[top:top + height // 4, left:left + width // 4] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return Image.fromarray(pixels)


class DummyModel(Model):
    """A model whose image for (prompt, seed) is `hash_image`; image tokens shift its colours."""

    name = "dummy"
    supports_image_tokens = True

    def __init__(self, delay: float = 0.0, device: str = "cpu", dtype: str = "fp32") -> None:
        self.delay = float(delay)
        self.device = device
        self.dtype = dtype

    def identity(self) -> dict[str, Any]:
        # The delay changes timing, not pixels, so it is not part of the identity.
        return {"version": 1, "dtype": self.dtype, "device_type": self.device.split(":")[0]}

    def generate(self, requests: Sequence[GenerationRequest], image_tokens: Any | None = None,
                 ip_scale: float = 0.0) -> list[Image.Image]:
        images = []
        for index, request in enumerate(requests):
            if self.delay:
                time.sleep(self.delay)
            image = hash_image(request.prompt.text, request.seed, request.height, request.width)
            if image_tokens is not None and ip_scale:
                shift = np.asarray(image_tokens[index], dtype=float).mean() * ip_scale
                image = Image.fromarray(np.clip(np.asarray(image, dtype=float) + shift, 0, 255).astype(np.uint8))
            images.append(image)
        return images

    def encode_image(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Four 'tokens' per image: the mean colour of each quadrant."""
        tokens = []
        for image in images:
            pixels = np.asarray(image, dtype=float)
            h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
            tokens.append([pixels[:h, :w].mean((0, 1)), pixels[:h, w:].mean((0, 1)),
                           pixels[h:, :w].mean((0, 1)), pixels[h:, w:].mean((0, 1))])
        return np.asarray(tokens)


class DummyMethod(Method):
    """Makes `hash_image` itself (no model call) and saves a small artefact, for pipeline tests."""

    name = "dummy"

    def __init__(self, delay: float = 0.0, salt: str = "") -> None:
        super().__init__(salt=salt)
        self.delay = float(delay)

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        results = []
        for request in requests:
            if self.delay:
                time.sleep(self.delay)
            text = request.prompt.text + self.params["salt"]
            results.append(Generation(image=hash_image(text, request.seed, request.height, request.width),
                                      artefacts={"note": {"prompt": request.prompt.text, "seed": request.seed}}))
        return results


class DummyScorer(Scorer):
    """Mean intensity of the colour channel picked by hash(prompt text), in [0, 1]."""

    name = "dummy"
    value_range = (0.0, 1.0)
    higher_is_better = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = float(delay)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        results = []
        for image, prompt in zip(images, prompts, strict=True):
            if self.delay:
                time.sleep(self.delay)
            channel = stable_int(prompt.text) % 3
            value = float(np.asarray(image.convert("RGB"), dtype=float)[..., channel].mean() / 255.0)
            results.append(ScoreResult(value=value, details={"channel": "RGB"[channel]}))
        return results


RENDER_PAIRS_FIRST_SEED = 90_000
"""Seeds recorded for render pairs: in the parts' range (DESIGN §8), as real pairs' are."""


def render_pairs(folder: Path, n: int, prompts: list[str] | None = None) -> Path:
    """Preference pairs without a model, for trainers' tests and benchmarks: `n` pairs of shapes train captions,
    winner = a render of the caption's scene, loser = a render of another train caption's scene, written as an
    imgbench pairs JSONL (PNG files beside it) with seeds recorded from RENDER_PAIRS_FIRST_SEED on. `prompts`
    replaces the captions (for models that are not the shapes world)."""
    import json

    from imgbench.worlds.shapes.grammar import SKILLS, splits
    from imgbench.worlds.shapes.render import draw, layout

    folder.mkdir(parents=True, exist_ok=True)
    train = [row for skill in SKILLS for row in splits()["train"][skill][:4]]
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        (caption, spec, _), (_, other, _) = train[i % len(train)], train[(i + 7) % len(train)]
        for name, scene in (("w", spec), ("l", other)):
            Image.fromarray(draw(layout(scene, rng))).save(folder / f"{i}-{name}.png")
        seed = RENDER_PAIRS_FIRST_SEED + 2 * i
        lines.append(json.dumps({"id": f"p{i}", "prompt": prompts[i % len(prompts)] if prompts else caption,
                                 "prompt_id": f"c{i % len(train)}", "winner": f"{i}-w.png", "loser": f"{i}-l.png",
                                 "winner_seed": seed, "loser_seed": seed + 1}))
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
