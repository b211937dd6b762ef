"""Prompt files → `Prompt` records (TXT, CSV, TSV, JSONL, JSON), and the content checksum.

Users evaluate their own prompts with `--prompts FILE`; built-in tasks use the same reader
through their YAML `prompts:` block, so there is one parser to test.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgbench.api.records import Prompt
from imgbench.api.specs import FORMATS, PromptSource
from imgbench.errors import UserError
from imgbench.util.hashing import sha256_json


def content_sha256(prompts: list[Prompt]) -> str:
    """sha256 over the parsed records (id, text, tags) in canonical form.

    Independent of quoting, line endings and file layout, so a faithful mirror passes and any
    changed prompt fails.
    """
    return sha256_json([[p.id, p.text, list(p.tags)] for p in prompts])


def infer_format(path: Path, declared: str | None) -> str:
    fmt = (declared or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise UserError(f"{path}: unknown prompt file format {fmt!r}; use one of {', '.join(FORMATS)} "
                        f"(set by the file suffix or `format:` in the task YAML).")
    return fmt


def _read_text(path: Path) -> str:
    if not path.exists():
        raise UserError(f"prompt file {path} does not exist; check the path (relative paths are from the "
                        f"current folder for --prompts, from the YAML's folder in a task YAML).")
    if path.is_dir():
        raise UserError(f"prompt file {path} is a folder; give a .txt, .csv, .tsv, .jsonl or .json file.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"prompt file {path} is not UTF-8 text.") from None


def _rows(path: Path, fmt: str) -> list[Any]:
    text = _read_text(path)
    if fmt == "txt":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t")
        return list(reader)
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from None
    if isinstance(data, dict):
        return [{"id": key, **(value if isinstance(value, dict) else {"text": value})} for key, value in data.items()]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of prompts or objects.")
    return data


def _as_tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def parse_rows(rows: list[Any], source: PromptSource, where: str) -> list[Prompt]:
    """Turn parsed rows (strings or mappings) into prompts, checking columns and empty texts."""
    prompts: list[Prompt] = []
    for index, row in enumerate(rows):
        if isinstance(row, str):
            row = {source.text_column: row}
        if not isinstance(row, dict):
            raise UserError(f"{where}: row {index} is neither a string nor an object.")
        if source.text_column not in row:
            columns = ", ".join(repr(c) for c in row) or "(none)"
            raise UserError(f"{where}: no column {source.text_column!r} holding the prompt text; the file has "
                            f"columns {columns}. Name the right one with --text-column (or text_column: in YAML).")
        text = row[source.text_column]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: row {index} has an empty prompt text; remove the row or fill it in.")
        if source.id_column is not None:
            if source.id_column not in row:
                raise UserError(f"{where}: no id column {source.id_column!r}; "
                                f"columns are {', '.join(map(repr, row))}.")
            prompt_id = str(row[source.id_column])
        else:
            prompt_id = str(index)
        if "/" in prompt_id or prompt_id in ("", ".", ".."):
            raise UserError(f"{where}: prompt id {prompt_id!r} cannot name a folder; ids must not contain '/'.")
        tags = [t for column in source.tag_columns for t in _as_tags(row.get(column))]
        metadata = {column: row[column] for column in source.metadata_columns if column in row}
        prompts.append(Prompt(id=prompt_id, text=text.strip(), tags=tuple(tags), metadata=metadata))
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{where}: prompt id {duplicate!r} appears more than once; ids must be unique.")
    if not prompts:
        raise UserError(f"{where}: no prompts found; the file is empty.")
    return prompts


def read_prompt_file(path: str | Path, source: PromptSource | None = None) -> list[Prompt]:
    """Read a user's prompt file: TXT (one a line), CSV/TSV (a text column), JSONL or JSON."""
    path = Path(path)
    source = source or PromptSource()
    fmt = infer_format(path, source.format)
    return parse_rows(_rows(path, fmt), source, str(path))


PromptLoader = Callable[[PromptSource, Path], list[Prompt]]
