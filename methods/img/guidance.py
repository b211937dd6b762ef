"""Where IMG's guidance h comes from, and the misalignment question put to the MLLM (paper §3.2).

The released aligners were trained with the official list of 100 question templates, each with a
`{prompt}` slot (`assets/edit_instructions.json` of the official repository). The list is never
copied into imgbench: it is read from a local copy (IMGBENCH_DATA_DIR/img_templates/ or a path)
or downloaded from the official commit, and its sha256 is verified. The official demo draws a
template with an unseeded `random.choice`, so its runs cannot be reproduced; here the choice is a
hash of (prompt, seed), stable across processes. A fixed template serves ablations, and a world
may bring its own list (any JSON list of strings with `{prompt}`).

Guidance sources (paper Table 5a): 'none' (initial tokens used as they are), 'text' (the
diffusion model's own text embedding), 'mllm' (an MLLM, e.g. the original LLaVA-1.5) and
'finetuned-mllm' (the misalignment-finetuned LLaVA of `shi-labs/IMG`, the paper's IMG).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_bytes, sha256_json, stable_int
from imgbench.util.io import atomic_write_bytes

logger = logging.getLogger(__name__)

OFFICIAL_TEMPLATES_URL = ("https://raw.githubusercontent.com/SHI-Labs/IMG-Multimodal-Diffusion-Alignment/"
                          "3b7abddb533e4e15edd519ae9318c6fb760ff478/assets/edit_instructions.json")
OFFICIAL_TEMPLATES_SHA256 = "de82949d760fb233c23e26e50d52aa36f45b658d0b662c281783377091b43902"
OFFICIAL_TEMPLATES_FILE = Path("img_templates") / "edit_instructions.json"
GUIDANCE_SOURCES = ("none", "text", "mllm", "finetuned-mllm")
SLOT = "{prompt}"


@dataclass(frozen=True)
class QuestionTemplates:
    """A list of question templates and the rule choosing one per (prompt, seed)."""

    templates: tuple[str, ...]
    source: str
    """'official', a file path, or 'fixed'."""
    sha256: str
    """sha256 of the file's bytes (official / path) or of the fixed template."""

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


def _parse(data: bytes, where: str) -> tuple[str, ...]:
    try:
        items = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{where}: not a JSON file ({exc}); expected a list of question templates.") from None
    if not isinstance(items, list):
        raise UserError(f"{where}: expected a JSON list of templates, got {type(items).__name__}.")
    return tuple(items)


def _official_bytes() -> tuple[bytes, str]:
    data_dir = os.environ.get("IMGBENCH_DATA_DIR")
    if data_dir and (Path(data_dir) / OFFICIAL_TEMPLATES_FILE).exists():
        path = Path(data_dir) / OFFICIAL_TEMPLATES_FILE
        return path.read_bytes(), str(path)
    from platformdirs import user_cache_dir

    cached = Path(user_cache_dir("imgbench")) / OFFICIAL_TEMPLATES_FILE
    if cached.exists():
        return cached.read_bytes(), str(cached)
    from imgbench.mllm.weights import offline

    if offline():
        raise UserError(f"the official IMG question templates are not available offline: set IMGBENCH_DATA_DIR to a "
                        f"folder holding {OFFICIAL_TEMPLATES_FILE}, pass templates=PATH, or download "
                        f"{OFFICIAL_TEMPLATES_URL} with IMGBENCH_OFFLINE unset.")
    try:
        with urllib.request.urlopen(OFFICIAL_TEMPLATES_URL, timeout=15) as response:
            data = response.read()
    except OSError as exc:
        raise UserError(f"could not download the IMG question templates from {OFFICIAL_TEMPLATES_URL}: {exc}. "
                        f"Download the file by hand and pass templates=PATH.") from None
    if sha256_bytes(data) == OFFICIAL_TEMPLATES_SHA256:
        atomic_write_bytes(cached, data)
    return data, OFFICIAL_TEMPLATES_URL


def load_templates(templates: str = "official", sha256: str | None = None) -> QuestionTemplates:
    """'official' (verified against the official file's sha256) or a path to a JSON list (verified
    against `sha256` when given)."""
    if templates == "official":
        data, where = _official_bytes()
        expected = OFFICIAL_TEMPLATES_SHA256
    else:
        path = Path(templates).expanduser()
        if not path.is_file():
            raise UserError(f"question templates {templates!r}: no such file; pass 'official' or a JSON list path.")
        data, where, expected = path.read_bytes(), str(path), sha256
    digest = sha256_bytes(data)
    if expected and digest != expected:
        raise UserError(f"question templates {where}: sha256 is {digest}, expected {expected}. The file differs from "
                        f"the published list; re-download it from {OFFICIAL_TEMPLATES_URL}.")
    return QuestionTemplates(templates=_parse(data, where), source=templates, sha256=digest)


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
