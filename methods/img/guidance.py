"""Where IMG's guidance h comes from, and the misalignment question put to the MLLM (paper §3.2).

The released aligners were trained with the official list of 100 question templates, each with a
`{prompt}` slot (`assets/edit_instructions.json` of the official repository). The list is never
copied into imgbench: `imgbench.suites.lists.load_template_list("img-edit-instructions")` reads it
from `--data-dir` / IMGBENCH_DATA_DIR (`img_templates/edit_instructions.json`), the cache, or the
official URL at a pinned commit, and verifies its content sha256. The official demo draws a
template with an unseeded `random.choice`, so its runs cannot be reproduced; here the choice is a
hash of (prompt, seed), stable across processes. A fixed template serves ablations, and a world
may bring its own list (any JSON list of strings with `{prompt}`).

Guidance sources (paper Table 5a): 'none' (initial tokens used as they are), 'text' (the
diffusion model's own text embedding), 'mllm' (an MLLM that was not finetuned, e.g. the original
LLaVA-1.5) and 'finetuned-mllm' (the misalignment-finetuned LLaVA of `shi-labs/IMG`, the paper's IMG).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_json, stable_int

logger = logging.getLogger(__name__)

OFFICIAL = "official"
OFFICIAL_LIST = "img-edit-instructions"
"""The verified list (imgbench.suites.lists.LISTS) that `templates=official` names."""
GUIDANCE_SOURCES = ("none", "text", "mllm", "finetuned-mllm")
SLOT = "{prompt}"


@dataclass(frozen=True)
class QuestionTemplates:
    """A list of question templates and the rule choosing one per (prompt, seed)."""

    templates: tuple[str, ...]
    source: str
    """'official', a file path, or 'fixed'."""
    sha256: str
    """sha256 of the canonical JSON of the parsed list (the verified-list convention), or of the fixed template."""

    def __post_init__(self) -> None:
        if not self.templates:
            raise UserError(f"question templates from {self.source}: the list is empty.")
        bad = [t for t in self.templates if not isinstance(t, str) or SLOT not in t]
        if bad:
            raise UserError(f"question templates from {self.source}: every template needs a {SLOT} slot; "
                            f"{len(bad)} do not (first: {bad[0]!r}).")

    def choose(self, prompt: str, seed: int) -> str:
        """The template for (prompt, seed): a process-independent hash, so reruns ask the same question."""
        return self.templates[stable_int("img-question", prompt, seed) % len(self.templates)]

    def question(self, prompt: str, seed: int) -> str:
        return self.choose(prompt, seed).replace(SLOT, prompt)

    def identity(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "n": len(self.templates)}


def _custom_list(path: Path) -> tuple[str, ...]:
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"question templates {path}: not a JSON file ({exc}); expected a list of templates.") from None
    if not isinstance(items, list):
        raise UserError(f"question templates {path}: expected a JSON list of templates, got {type(items).__name__}.")
    return tuple(items)


def load_templates(templates: str = OFFICIAL, sha256: str | None = None) -> QuestionTemplates:
    """'official' (the verified list, see module doc) or a path to a JSON list of templates, checked
    against `sha256` (of its parsed content, as `imgbench.util.hashing.sha256_json`) when given."""
    if templates == OFFICIAL:
        from imgbench.suites.lists import LISTS, load_template_list

        return QuestionTemplates(templates=tuple(load_template_list(OFFICIAL_LIST)), source=OFFICIAL,
                                 sha256=LISTS[OFFICIAL_LIST].content_sha256)
    path = Path(templates).expanduser()
    if not path.is_file():
        raise UserError(f"question templates {templates!r}: no such file; pass 'official' or a JSON list path.")
    items = _custom_list(path)
    digest = sha256_json(list(items))
    if sha256 and digest != sha256:
        raise UserError(f"question templates {path}: content sha256 is {digest}, expected {sha256}.")
    return QuestionTemplates(templates=items, source=templates, sha256=digest)


def fixed_template(template: str) -> QuestionTemplates:
    """One template for every prompt (ablations)."""
    return QuestionTemplates(templates=(template,), source="fixed", sha256=sha256_json(template))


def build_templates(templates: str = "official", template: str | None = None,
                    sha256: str | None = None) -> QuestionTemplates:
    return fixed_template(template) if template else load_templates(templates, sha256)


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
