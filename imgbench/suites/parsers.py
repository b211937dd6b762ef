"""Parsers for published suites whose upstream layout the generic prompt reader cannot express.

Each parser turns the upstream files (found by `imgbench.suites.fetch`) into plain rows and hands
them to the same `parse_rows` every prompt file goes through, so ids, tags and metadata follow the
task YAML's `id_column` / `text_column` / `tag_columns` / `metadata_columns`. A task names its
parser as `loader: imgbench.suites.parsers:<name>`; the signature is `(source, folder) -> prompts`.
Ids are upstream ids or row indices (prefixed by the file's category where a suite spans files),
never hashes of the text: HPDv2 and TIFA repeat texts.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgbench.api.records import Prompt
from imgbench.api.specs import PromptSource
from imgbench.errors import UserError
from imgbench.prompts import content_sha256, parse_rows


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the suite's folder must hold the upstream files.") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; the upstream file is UTF-8, so this copy is damaged.") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the copy is damaged.") from None


def _files(source: PromptSource, folder: Path) -> list[Path]:
    if not source.files:
        raise UserError("this loader needs `files:` in the task's prompts block.")
    return [folder / name for name in source.files]


def _stem(path: Path, suffix: str = "") -> str:
    stem = path.name.split(".")[0]
    return stem[: -len(suffix)] if suffix and stem.endswith(suffix) else stem


def partiprompts(source: PromptSource, folder: Path) -> list[Prompt]:
    """PartiPrompts.tsv read as plain tab-separated text.

    A CSV reader would treat the row starting with '"G I G G L E"' as a quoted field and drop the
    quotes; the upstream file is unquoted TSV, so splitting on tabs is the faithful reading.
    """
    path = _files(source, folder)[0]
    lines = [line.rstrip("\r") for line in _read(path).splitlines()]
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(header):
            raise UserError(f"{path}:{number}: {len(values)} tab-separated fields, expected {len(header)} "
                            f"({', '.join(header)}).")
        rows.append(dict(zip(header, values, strict=True)))
    return parse_rows(rows, source, str(path))


def t2i_compbench(source: PromptSource, folder: Path) -> list[Prompt]:
    """One `<category>_val.txt` per category, a prompt a line; id `<category>_<line index>`."""
    rows = []
    for path in _files(source, folder):
        category = _stem(path, "_val")
        for index, line in enumerate(_read(path).splitlines()):
            if line.strip():
                rows.append({"id": f"{category}_{index}", "text": line, "category": category})
    return parse_rows(rows, source, str(folder))


def hpdv2(source: PromptSource, folder: Path) -> list[Prompt]:
    """HPSv2 benchmark: one JSON list of strings per style; id `<style>_<index>` (texts repeat)."""
    rows = []
    for path in _files(source, folder):
        texts = _json(path)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise UserError(f"{path}: expected a JSON list of prompt strings.")
        style = _stem(path)
        rows.extend({"id": f"{style}_{i}", "text": text, "style": style} for i, text in enumerate(texts))
    return parse_rows(rows, source, str(folder))


def hpdv2_with_drawbench(source: PromptSource, folder: Path) -> list[Prompt]:
    """hpdv2-3400: the four style files, verified against `hpdv2`'s pin, plus HPDv2's unpinned drawbench.json.

    Only drawbench.json lacks a verifiable reference; the 3,200 style prompts must still be exactly
    the published ones.
    """
    from imgbench import catalog

    styles = catalog.tasks().get("hpdv2").spec.prompts
    prompts = hpdv2(replace(source, files=styles.files), folder)
    if content_sha256(prompts) != styles.content_sha256:
        raise UserError(f"{folder}: the four HPDv2 style files differ from the published lists (content checksum "
                        f"{content_sha256(prompts)}, task 'hpdv2' pins {styles.content_sha256}); replace them with "
                        f"unmodified copies.")
    return prompts + hpdv2(replace(source, files=tuple(f for f in source.files if f not in styles.files)), folder)


def tifa(source: PromptSource, folder: Path) -> list[Prompt]:
    """TIFA v1.0 text inputs; the id prefix names the caption's source (coco, partiprompt, ...)."""
    path = _files(source, folder)[0]
    items = _json(path)
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        raise UserError(f"{path}: expected a JSON list of objects with an 'id'.")
    rows = [{**item, "source": str(item["id"]).rsplit("_", 1)[0]} for item in items]
    return parse_rows(rows, source, str(path))


def _numeric_id(value: Any, path: Path) -> int:
    """GenAI-Bench ids are numbers ('00001' in one file, 1 in the other); anything else means a damaged copy."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: prompt id {value!r} is not a number; GenAI-Bench ids are numeric "
                        f"(e.g. '00001'), so this copy is damaged or not GenAI-Bench.") from None


def genai_bench(source: PromptSource, folder: Path) -> list[Prompt]:
    """GenAI-Bench: `genai_image.json` (id → prompt, per-model human ratings) + `genai_skills.json` (skill → ids).

    Rows are ordered by numeric id so a re-export with other key order checks the same; the
    per-model 1–5 human ratings (`models` upstream) are kept as `human_ratings` for scorer agreement.
    """
    image_path, skills_path = _files(source, folder)
    images, skills = _json(image_path), _json(skills_path)
    if not isinstance(images, dict) or not isinstance(skills, dict):
        raise UserError(f"{image_path} and {skills_path} must each hold a JSON object.")
    by_id: dict[int, list[str]] = {}
    for skill, ids in skills.items():
        if not isinstance(ids, list):
            raise UserError(f"{skills_path}: skill {skill!r} should map to a list of prompt ids.")
        for prompt_id in ids:
            by_id.setdefault(_numeric_id(prompt_id, skills_path), []).append(skill)
    rows = []
    for key in sorted(images, key=lambda k: _numeric_id(k, image_path)):
        entry = images[key]
        if not isinstance(entry, dict):
            raise UserError(f"{image_path}: entry {key!r} is not an object.")
        row = {"id": key, "prompt": entry.get("prompt", ""), "skills": by_id.get(int(key), [])}
        if "models" in entry:
            row["human_ratings"] = entry["models"]
        rows.append(row)
    return parse_rows(rows, source, str(image_path))


def dpg_bench(source: PromptSource, folder: Path) -> list[Prompt]:
    """DPG-Bench: one prompt per `prompts/<id>.txt`; ordered by file name, id = file stem."""
    paths: list[Path] = []
    for entry in _files(source, folder):
        paths.extend(sorted(entry.glob("*.txt")) if entry.is_dir() else [entry])
    if not paths:
        raise UserError(f"{folder}: no prompt files found under {', '.join(source.files)}.")
    rows = [{"id": p.stem, "text": _read(p)} for p in paths]
    return parse_rows(rows, source, str(folder))


def pickapic(source: PromptSource, folder: Path) -> list[Prompt]:
    """Pick-a-Pic v2 `test_unique` parquet: only the caption column is read (the rows also hold images)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("reading Pick-a-Pic's parquet file needs pyarrow: pip install 'imgbench[suites]'.") from None
    path = _files(source, folder)[0]
    try:
        table = pq.read_table(path, columns=[source.text_column])
    except (OSError, ValueError, KeyError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) for bad files
        raise UserError(f"{path}: cannot read column {source.text_column!r} as parquet ({exc}).") from None
    rows = [{source.text_column: value} for value in table.column(source.text_column).to_pylist()]
    return parse_rows(rows, source, str(path))
