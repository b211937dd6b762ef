"""Where IMG's guidance h comes from, and the misalignment question put to the MLLM (paper §3.2).

The questions themselves (the official list of 100 templates, chosen per (prompt, seed)) live in
`imgbench.mllm.questions`, shared with Instruct-Pix2Pix.

Guidance sources (paper Table 5a): 'none' (initial tokens used as they are), 'text' (the
diffusion model's own text embedding), 'mllm' (an MLLM that was not finetuned, e.g. the original
LLaVA-1.5) and 'finetuned-mllm' (the misalignment-finetuned LLaVA of `shi-labs/IMG`, the paper's IMG).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgbench.errors import UserError

GUIDANCE_SOURCES = ("none", "text", "mllm", "finetuned-mllm")


def text_guidance(model: Any, prompts: Sequence[str]) -> list[Any]:
    """Guidance from the diffusion model's own text encoder (Table 5a 'Text embedding')."""
    import torch

    embeds = model.encode_text(list(prompts))
    embeds = torch.as_tensor(embeds).float().cpu()
    if embeds.ndim != 3:
        raise RuntimeError(f"model.encode_text returned shape {tuple(embeds.shape)}; expected (batch, tokens, width)")
    return list(embeds)


def check_source(guidance: str) -> None:
    if guidance not in GUIDANCE_SOURCES:
        raise UserError(f"guidance must be one of {', '.join(GUIDANCE_SOURCES)}; got {guidance!r}.")
