"""Controls that locate a gain: for any method that regenerates through IP image tokens, and any method
that draws twice (DESIGN §6; the IMG result that a second, self-conditioned sample did as well).

A method that regenerates an image with aligned image tokens changes three things at once: it draws a
second time, it conditions on the first image, and it steers that conditioning with guidance. Each
control removes one of them, with everything else kept:

- `own-tokens`: the image's own tokens, unaligned (IMG's `guidance=none`, paper Table 5a "No guidance");
- `zero-tokens`: the adapter's tokens for *no* image (its unconditional branch's), so the adapter is on
  but carries no content;
- `random-tokens`: random tokens with each token's norm matched to the image's own (seeded by prompt and
  seed): as much push as the real tokens, in no particular direction;
- `other-guidance`: the aligner fed the guidance of another prompt (the next prompt with the same first
  tag, in task order) drawn with the same seed: guidance, but not about this image;
- `reroll` (a method of its own, `methods/reroll`): plain generation with seed + REROLL_OFFSET — a second
  sample with fresh noise, the control for any two-generation method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgbench.api.records import Prompt
from imgbench.util.hashing import stable_int

TOKEN_CONTROLS = ("own-tokens", "zero-tokens", "random-tokens", "other-guidance")
REROLL_OFFSET = 1_000_000
"""Fresh noise for an item: its seed plus this (outside every range a task or a part's data uses)."""


def random_norm_matched(tokens: Any, keys: Sequence[tuple[str, int]]) -> Any:
    """Gaussian tokens whose per-token norms equal those of `tokens` (B, N, D), one seeded draw per (prompt, seed),
    so an image's control tokens never depend on its batch."""
    import torch

    out = torch.empty_like(tokens)
    for index, (prompt_id, seed) in enumerate(keys):
        generator = torch.Generator().manual_seed(stable_int("random-tokens", prompt_id, seed) % 2**63)
        noise = torch.randn(tokens.shape[1:], generator=generator, dtype=tokens.dtype)
        scale = tokens[index].norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        out[index] = noise * scale
    return out


def partner_prompts(prompts: Sequence[Prompt]) -> dict[str, Prompt]:
    """Each prompt's partner for `other-guidance`: the next prompt (cyclically, in task order) whose first tag
    is the same, so the borrowed guidance is about the same kind of scene but another one; a prompt alone in
    its tag (or untagged) takes the next prompt of the task."""
    groups: dict[str, list[Prompt]] = {}
    for prompt in prompts:
        groups.setdefault(prompt.tags[0] if prompt.tags else "", []).append(prompt)
    partners: dict[str, Prompt] = {}
    for group in groups.values():
        for position, prompt in enumerate(group):
            partners[prompt.id] = group[(position + 1) % len(group)]
    for index, prompt in enumerate(prompts):
        if len(groups[prompt.tags[0] if prompt.tags else ""]) == 1:
            partners[prompt.id] = prompts[(index + 1) % len(prompts)]
    return partners
