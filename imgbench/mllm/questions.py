"""The misalignment questions put to an MLLM about an image (IMG paper §3.2; img_paper.md §1.2).

IMG's MLLM was finetuned with the official list of 100 question templates, each with a `{prompt}`
slot (`assets/edit_instructions.json` of the official repository), and Instruct-Pix2Pix in the IMG
paper (Fig. 3) gets its instructions from the same MLLM asked the same questions, so both methods
share this module. The list is never copied into imgbench:
`imgbench.suites.lists.load_template_list("img-edit-instructions")` reads it from `--data-dir` /
IMGBENCH_DATA_DIR (`img_templates/edit_instructions.json`), the cache, or the official URL at a
pinned commit, and verifies its content sha256. The official demo draws a template with an
unseeded `random.choice`, so its runs cannot be reproduced; here the choice is a hash of
(prompt, seed), stable across processes, so every method asks the same question for an item. A
fixed template serves ablations, and a world may bring its own list (any JSON list of strings
with `{prompt}`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_json, stable_int

OFFICIAL = "official"
OFFICIAL_LIST = "img-edit-instructions"
"""The verified list (imgbench.suites.lists.LISTS) that `templates=official` names."""
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
