"""Verified single files that methods and scorers need: found like suites, checked by content sha256.

The IMG method puts one of the official 100 question templates (`assets/edit_instructions.json`
of the IMG repository) to its MLLM (IMG paper §3.2; reference/img_paper.md); the GenEval scorer
needs GenEval's 80 detector class names. Neither is copied into this repository: each is read
from the data dir, the cache or its official URL, exactly like a task's prompts, and its parsed
content must match the sha256 recorded here, so a re-saved copy passes and an edited one fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from imgbench.errors import UserError, did_you_mean
from imgbench.suites.fetch import Remote, locate
from imgbench.util.hashing import sha256_json


@dataclass(frozen=True)
class VerifiedList:
    """A published list of strings: a JSON list, or a text file with one item a line."""

    name: str
    data_dir: str
    """Folder under the data dir / cache (upstream file name inside it)."""
    file: str
    url: str
    content_sha256: str
    """sha256 of the canonical JSON of the parsed list (order and repeats kept)."""
    description: str = ""


LISTS: dict[str, VerifiedList] = {
    entry.name: entry
    for entry in (
        VerifiedList(
            name="img-edit-instructions",
            data_dir="img_templates",
            file="edit_instructions.json",
            url="https://raw.githubusercontent.com/SHI-Labs/IMG-Multimodal-Diffusion-Alignment/"
                "3b7abddb533e4e15edd519ae9318c6fb760ff478/assets/edit_instructions.json",
            content_sha256="305f4c269592146d1f82d61d34428910409dbf1c879a2ead244fcaca4aec6d77",
            description="IMG's 100 misalignment-question templates (97 unique), each with a {prompt} slot",
        ),
        VerifiedList(
            name="geneval-object-names",
            data_dir="geneval",
            file="object_names.txt",
            url="https://raw.githubusercontent.com/djghosh13/geneval/af4902f24d3ca90ebbb446dd9891a59e0f82725f/"
                "prompts/object_names.txt",
            content_sha256="e8d4cd4ce490bf90726011288d5a1d455540627ce491564562f990b95797f2d9",
            description="GenEval's 80 COCO class names (the detector vocabulary)",
        ),
    )
}


def _parse(entry: VerifiedList, text: str, where: str) -> list[str]:
    if entry.file.endswith(".json"):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg}); the copy is damaged.") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise UserError(f"{where}: expected a JSON list of strings.")
        return items
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_list(name: str) -> list[str]:
    """The named list, verified: data dir (IMGBENCH_DATA_DIR / --data-dir), else the cache, else its URL."""
    if name not in LISTS:
        raise UserError(did_you_mean(name, LISTS, "verified list"))
    entry = LISTS[name]
    located = locate(Remote(what=f"list {name!r}", data_dir=entry.data_dir, files=(entry.file,), url=entry.url))
    path = located.folder / entry.file
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; the copy is damaged.") from None
    items = _parse(entry, text, str(path))
    seen = sha256_json(items)
    if seen != entry.content_sha256:
        raise UserError(f"list {name!r}: the copy at {located.describe()} has content checksum {seen}, expected "
                        f"{entry.content_sha256}; it differs from the official file ({entry.url}). Replace it "
                        f"with an unmodified copy (delete a cached copy to download it again).")
    return items


def load_template_list(name: str = "img-edit-instructions") -> list[str]:
    """Question templates with a '{prompt}' slot (all of them, repeats kept: the official demos draw from 100)."""
    templates = load_list(name)
    bad = [t for t in templates if "{prompt}" not in t]
    if bad:
        raise UserError(f"list {name!r} is not a template list: {len(bad)} entries lack a {{prompt}} slot "
                        f"(e.g. {bad[0]!r}).")
    return templates
