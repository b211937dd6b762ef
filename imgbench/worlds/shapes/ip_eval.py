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
from imgbench.worlds.shapes.grammar import fixes_scene
from imgbench.worlds.shapes.render import CANVAS, render
from imgbench.worlds.shapes.tasks import split_prompts

REGEN_SEED = 50_000
BATCH = 64


def scene(image: Image.Image) -> Counter[tuple[str, str]]:
    return Counter((d.color, d.shape) for d in detect(image))


def source_images(model: Any, kind: str, prompts: list[Prompt]) -> list[Image.Image]:
    """Renders of the prompts' specs (exact scenes) or the model's own drawings of them (what IMG feeds)."""
    if kind == "renders":
        return [render(p.metadata["spec"], seed) for seed, p in enumerate(prompts)]
    return _generate(model, [GenerationRequest(p, 0, CANVAS, CANVAS) for p in prompts])


def _generate(model: Any, requests: list[GenerationRequest], **kwargs: Any) -> list[Image.Image]:
    return [im for start in range(0, len(requests), BATCH) for im in model.generate(requests[start:start + BATCH],
                                                                                    **kwargs)]


def reproduction(model: Any, kind: str = "renders", split: str = "val", limit: int = 10_000,
                 ip_scale: float = 1.0) -> dict[str, Any]:
    """Share of sources whose scene comes back from their tokens (empty caption, new seed), and without tokens.

    The ceiling beside it: on the sources whose caption names every colour (so the caption fixes the
    scene's multiset), the share that comes back when the model redraws the caption itself with the same
    new seed. Tokens cannot be expected to carry a scene more reliably than the model draws it from text."""
    prompts = split_prompts(split)[:limit]
    sources = source_images(model, kind, prompts)
    kept = [(p, im, s) for p, im, s in zip(prompts, sources, map(scene, sources), strict=True) if s]
    wanted = [s for _, _, s in kept]
    empty = Prompt(id="empty", text="")
    requests = [GenerationRequest(empty, REGEN_SEED + i, CANVAS, CANVAS) for i in range(len(kept))]
    with_ip, without = [], []
    for start in range(0, len(kept), BATCH):
        chunk, reqs = [im for _, im, _ in kept[start:start + BATCH]], requests[start:start + BATCH]
        with_ip += model.generate(reqs, image_tokens=model.encode_image(chunk), ip_scale=ip_scale)
        without += model.generate(reqs)
    hit_ip = [want == scene(image) for want, image in zip(wanted, with_ip, strict=True)]
    hit_none = [want == scene(image) for want, image in zip(wanted, without, strict=True)]
    named = [i for i, (p, _, _) in enumerate(kept) if fixes_scene(p.metadata["spec"])]
    redrawn = _generate(model, [GenerationRequest(kept[i][0], REGEN_SEED + i, CANVAS, CANVAS) for i in named])
    hit_caption = [wanted[i] == scene(image) for i, image in zip(named, redrawn, strict=True)]
    rate_ip, rate_none = _share(hit_ip), _share(hit_none)
    by_skill = share_by_skill([p for p, _, _ in kept], hit_ip)
    return {"source": kind, "split": split, "n": len(kept), "ip_scale": ip_scale, "with_tokens": rate_ip,
            "without_tokens": rate_none, "ratio": rate_ip / rate_none if rate_none else float("inf"),
            "n_colours_named": len(named), "with_tokens_colours_named": _share([hit_ip[i] for i in named]),
            "from_caption_colours_named": _share(hit_caption), "with_tokens_by_skill": by_skill,
            "from_caption_by_skill": share_by_skill([kept[i][0] for i in named], hit_caption)}


def share_by_skill(prompts: list[Prompt], hits: list[bool]) -> dict[str, float]:
    """Hit rate per skill: the pooled rates mix easy one-object scenes with the hardest bindings."""
    skills = sorted({tag for p in prompts for tag in p.tags})
    return {skill: round(_share([hit for p, hit in zip(prompts, hits, strict=True) if skill in p.tags]), 4)
            for skill in skills}


def _share(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")
