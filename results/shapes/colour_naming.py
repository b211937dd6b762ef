"""Redrawing the colour-naming val + test captions with `eval-ip`'s seeds: shared by the IP diagnosis scripts.

A caption that names every object's colour fixes the scene's multiset of coloured shapes, so whatever
conditions the UNet (the caption, or tokens standing in for it) can be scored by whether that exact
scene comes back.
"""

from collections import Counter
from contextlib import nullcontext

import numpy as np
import torch
from PIL import Image

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.grammar import fixes_scene
from imgbench.worlds.shapes.ip_eval import REGEN_SEED, scene
from imgbench.worlds.shapes.tasks import split_prompts

STEPS = 25

prompts = [p for split in ("val", "test") for p in split_prompts(split) if fixes_scene(p.metadata["spec"])]
wanted = [Counter((o["color"], o["shape"]) for o in p.metadata["spec"]["objects"] for _ in range(int(o["count"])))
          for p in prompts]


def draw(unet: torch.nn.Module, sampler: object, states: torch.Tensor, pooled: torch.Tensor,
         ip_tokens: torch.Tensor | None = None) -> list[Image.Image]:
    """One image per row of `states` (seed REGEN_SEED + row); `ip_tokens` are fed as they are, past the projection."""
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(REGEN_SEED + i))
                     for i in range(states.shape[0])])
    extra = {} if ip_tokens is None else ip_adapter.ip_kwargs(ip_tokens)
    sampler.set_timesteps(STEPS)
    with torch.no_grad(), ip_adapter.given_tokens(unet) if ip_tokens is not None else nullcontext():
        for t in sampler.timesteps:
            v = unet(x, t, encoder_hidden_states=states, class_labels=pooled, **extra).sample
            x = sampler.step(v, t, x).prev_sample
    pixels = nets.unpack(x).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).numpy())) for p in pixels]


def share_back(images: list[Image.Image]) -> str:
    """'0.482  (color-attr 0.161  colors 0.804)': the share whose checker scene is the caption's, per skill."""
    hits = [want == scene(image) for want, image in zip(wanted, images, strict=True)]
    per_skill: dict[str, list[bool]] = {}
    for prompt, hit in zip(prompts, hits, strict=True):
        per_skill.setdefault(prompt.tags[0], []).append(hit)
    by_skill = "  ".join(f"{skill} {np.mean(skill_hits):.3f}" for skill, skill_hits in sorted(per_skill.items()))
    return f"{np.mean(hits):.3f}  ({by_skill})"
