"""Does the IP-Adapter carry a scene? Regenerate each source image from its own tokens alone.

The check behind IMG's premise: with an empty caption and a new seed, the image tokens must bring back
the source's scene (the checker's multiset of coloured shapes), far more often than the same
generation without tokens, which only hits a scene by chance.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from PIL import Image

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.worlds.shapes.checker import detect
from imgbench.worlds.shapes.render import CANVAS, render
from imgbench.worlds.shapes.tasks import split_prompts

REGEN_SEED = 50_000
BATCH = 64


def scene(image: Image.Image) -> Counter[tuple[str, str]]:
    return Counter((d.color, d.shape) for d in detect(image))


def source_images(model: Any, kind: str, split: str, limit: int) -> list[Image.Image]:
    """Renders of the split's specs (exact scenes) or the model's own drawings of its captions (what IMG feeds)."""
    prompts = split_prompts(split)[:limit]
    if kind == "renders":
        return [render(p.metadata["spec"], seed) for seed, p in enumerate(prompts)]
    requests = [GenerationRequest(p, 0, CANVAS, CANVAS) for p in prompts]
    return [im for start in range(0, len(requests), BATCH) for im in model.generate(requests[start:start + BATCH])]


def reproduction(model: Any, kind: str = "renders", split: str = "val", limit: int = 10_000,
                 ip_scale: float = 1.0) -> dict[str, Any]:
    """Share of sources whose scene comes back from their tokens (empty caption, new seed), and without tokens."""
    scenes = [(im, scene(im)) for im in source_images(model, kind, split, limit)]
    sources, wanted = [im for im, s in scenes if s], [s for _, s in scenes if s]
    empty = Prompt(id="empty", text="")
    requests = [GenerationRequest(empty, REGEN_SEED + i, CANVAS, CANVAS) for i in range(len(sources))]
    with_ip, without = [], []
    for start in range(0, len(sources), BATCH):
        chunk, reqs = sources[start:start + BATCH], requests[start:start + BATCH]
        tokens = model.encode_image(chunk)
        with_ip += model.generate(reqs, image_tokens=tokens, ip_scale=ip_scale)
        without += model.generate(reqs)
    hit_ip = [want == scene(image) for want, image in zip(wanted, with_ip, strict=True)]
    hit_none = [want == scene(image) for want, image in zip(wanted, without, strict=True)]
    rate_ip, rate_none = sum(hit_ip) / len(sources), sum(hit_none) / len(sources)
    return {"source": kind, "split": split, "n": len(sources), "ip_scale": ip_scale, "with_tokens": rate_ip,
            "without_tokens": rate_none, "ratio": rate_ip / rate_none if rate_none else float("inf")}
