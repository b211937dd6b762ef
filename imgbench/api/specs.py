"""Specs: what users write in YAML. Frozen, strict (unknown keys are errors), hashable.

A mistyped key is the most common YAML bug and silently ignoring it changes a benchmark, so
every spec rejects keys it does not know, naming the file, the line and the valid keys.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.text import check_name, check_seeds
from imgbench.util.yamlfile import LocatedMapping

FORMATS = ("txt", "csv", "tsv", "jsonl", "json")
"""Prompt file formats (`format:` in a task's prompts block, else the file suffix)."""
MAX_SIDE = 16384
"""Largest image side a task may ask for (a typo like 51200 would otherwise allocate until it fails)."""


def check_keys(located: LocatedMapping, valid: list[str], kind: str) -> None:
    """Raise on the first unknown key, with file:line, a did-you-mean and the valid keys."""
    for key in located.data:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" — did you mean {close[0]!r}?" if close else "."
            raise UserError(
                f"{located.where(key)}: unknown key {key!r} in {kind}{hint} Valid keys: {', '.join(sorted(valid))}."
            )


def _expect(located: LocatedMapping, key: str, value: Any, types: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise UserError(f"{located.where(key)}: {key} must be {what}, got {value!r}.")
    if not isinstance(value, types):
        raise UserError(f"{located.where(key)}: {key} must be {what}, got {value!r}.")
    return value


def _str_list(located: LocatedMapping, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = located.data.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    _expect(located, key, value, list, "a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise UserError(f"{located.where(key)}: {key} must be a list of strings, got {value!r}.")
    return tuple(value)


def _mapping(located: LocatedMapping, key: str) -> dict[str, Any]:
    value = located.data.get(key, {}) or {}
    return dict(_expect(located, key, value, dict, "a mapping"))


def _optional_str(located: LocatedMapping, key: str, default: str | None = None) -> str | None:
    value = located.data.get(key, default)
    return None if value is None else _expect(located, key, value, str, "a string")


def _int_in(located: LocatedMapping, key: str, default: int | None, low: int, high: int) -> int | None:
    """An optional integer key within [low, high] (a size of 0 or a negative version is impossible, not odd)."""
    value = located.data.get(key, default)
    if value is None:
        return None
    _expect(located, key, value, int, "an integer")
    if not low <= value <= high:
        raise UserError(f"{located.where(key)}: {key} must be an integer from {low} to {high}, got {value!r}.")
    return value


def _required_str(located: LocatedMapping, key: str, kind: str) -> str:
    if key not in located.data:
        raise UserError(f"{located.path}: {kind} is missing the required key {key!r}.")
    return str(_expect(located, key, located.data[key], (str, int, float), "a string"))


@dataclass(frozen=True)
class PromptSource:
    """Where a task's prompts come from and how to parse them."""

    path: str | None = None
    """A local prompt file, relative to the YAML (built-in tasks and user prompt files)."""
    format: str | None = None
    """txt | csv | tsv | jsonl | json (a list of strings or of objects); inferred from the suffix if unset."""
    text_column: str = "text"
    """Column or key holding the prompt text (CSV/TSV/JSONL)."""
    id_column: str | None = None
    """Column or key holding the upstream id; row index when unset."""
    tag_columns: tuple[str, ...] = ()
    """Columns whose values become tags (slugified); a list value gives several tags."""
    metadata_columns: tuple[str, ...] = ()
    """Columns kept in the prompt record's metadata (e.g. GenEval's include/exclude)."""
    loader: str | None = None
    """A 'module:function(source, folder) -> prompts' parser for layouts the generic reader cannot express
    (data, not logic, stays in YAML; see imgbench.suites.parsers)."""
    url: str | None = None
    """Official source: one file's URL; a template with '{file}' filled with each of `files`; or an archive
    (.tar.gz / GitHub codeload tarball) whose '#sub/folder' fragment holds `files`."""
    files: tuple[str, ...] = ()
    """Upstream file names inside the suite's data folder (a name ending in '/' is a whole folder). Setting
    them makes the task a published suite: read from IMGBENCH_DATA_DIR/<data_dir>/, else the cache, else `url`."""
    data_dir: str | None = None
    """Subfolder of the data dir and the cache holding the upstream layout (default: the task name)."""
    content_sha256: str | None = None
    """sha256 of the parsed prompt records (id, text, tags) in canonical form; a mismatch is an error."""

    KEYS = ("path", "format", "text_column", "id_column", "tag_columns", "metadata_columns", "loader", "url",
            "files", "data_dir", "content_sha256")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: LocatedMapping) -> PromptSource:
        inner = LocatedMapping(data=dict(raw), origins={k: where.origins.get("prompts", (where.path, 1))
                                                       for k in raw}, path=where.path)
        check_keys(inner, list(cls.KEYS), "prompts")
        fmt = _optional_str(inner, "format")
        if fmt is not None and fmt not in FORMATS:
            raise UserError(f"{inner.where('format')}: prompts.format must be one of {', '.join(FORMATS)}, got "
                            f"{fmt!r}.")
        loader = _optional_str(inner, "loader")
        if loader is not None and ":" not in loader:
            raise UserError(f"{inner.where('loader')}: prompts.loader must look like 'package.module:function', "
                            f"got {loader!r}.")
        data_dir = _optional_str(inner, "data_dir")
        if data_dir is not None:
            check_name(data_dir, f"{inner.where('data_dir')}: prompts.data_dir")
        checksum = _optional_str(inner, "content_sha256")
        if checksum is not None and not re.fullmatch(r"[0-9a-f]{64}", checksum):
            raise UserError(f"{inner.where('content_sha256')}: prompts.content_sha256 must be 64 lowercase hex "
                            f"digits (a sha256), got {checksum!r}.")
        return cls(
            path=_optional_str(inner, "path"),
            format=fmt,
            text_column=_optional_str(inner, "text_column", "text") or "text",
            id_column=_optional_str(inner, "id_column"),
            tag_columns=_str_list(inner, "tag_columns"),
            metadata_columns=_str_list(inner, "metadata_columns"),
            loader=loader,
            url=_optional_str(inner, "url"),
            files=_str_list(inner, "files"),
            data_dir=data_dir,
            content_sha256=checksum,
        )


@dataclass(frozen=True)
class TaskSpec:
    """A prompt suite plus its protocol (seeds, size, scorers)."""

    name: str
    """Registry name (`task:` in YAML)."""
    version: int = 1
    """Bumped when the task's protocol changes; part of the run id."""
    description: str = ""
    """One line for `imgbench ls tasks`."""
    source: Mapping[str, Any] = field(default_factory=dict)
    """paper, url, license: shown by `ls` and `show task`."""
    prompts: PromptSource = field(default_factory=PromptSource)
    """Where the prompts come from."""
    size: int | None = None
    """Declared number of prompts (checked by `validate` and the tests against the data)."""
    tags: Mapping[str, int] = field(default_factory=dict)
    """Declared tag counts (checked like `size`)."""
    select_tags: tuple[str, ...] = ()
    """Keep only prompts with one of these tags (a three-line subset task includes its parent)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Default generator seeds, shared by every prompt and method (what makes runs paired)."""
    height: int = 512
    width: int = 512
    scorers: tuple[str, ...] = ()
    """Default scorers."""
    primary_scorer: str | None = None
    """The scorer a leaderboard ranks by; defaults to the first scorer."""
    default_model: str | None = None
    """Model used when `--model` is not given."""
    yaml_path: Path | None = None
    """The YAML file this spec came from (not part of its identity)."""

    KEYS = ("task", "version", "description", "source", "prompts", "size", "tags", "select_tags", "seeds",
            "height", "width", "scorers", "primary_scorer", "default_model")

    @classmethod
    def from_yaml(cls, located: LocatedMapping) -> TaskSpec:
        """Every key checked for type and range here, so a bad YAML fails with its file and line, not mid-run."""
        check_keys(located, list(cls.KEYS), "task spec")
        data = located.data
        _required_str(located, "task", "task spec")
        name = _expect(located, "task", data["task"], str, "a string")
        check_name(name, f"{located.where('task')}: task name")
        seeds = data.get("seeds", [0, 1, 2, 3])
        _expect(located, "seeds", seeds, list, "a list of non-negative integers")
        check_seeds(seeds, f"{located.where('seeds')}: seeds")
        tags = _mapping(located, "tags")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in tags.values()):
            raise UserError(f"{located.where('tags')}: tags must map each tag to its prompt count (an integer "
                            f"≥ 0), got {tags!r}.")
        scorers = _str_list(located, "scorers")
        primary = _optional_str(located, "primary_scorer") or (scorers[0] if scorers else None)
        if primary is not None and scorers and primary not in scorers:
            raise UserError(f"{located.where('primary_scorer')}: primary_scorer {primary!r} is not in scorers "
                            f"{list(scorers)}.")
        return cls(
            name=name,
            version=_int_in(located, "version", 1, 1, 10**9) or 1,
            description=_optional_str(located, "description", "") or "",
            source=_mapping(located, "source"),
            prompts=PromptSource.from_mapping(_mapping(located, "prompts"), located),
            size=_int_in(located, "size", None, 1, 10**9),
            tags={str(k): v for k, v in tags.items()},
            select_tags=_str_list(located, "select_tags"),
            seeds=tuple(seeds),
            height=_int_in(located, "height", 512, 1, MAX_SIDE) or 512,
            width=_int_in(located, "width", 512, 1, MAX_SIDE) or 512,
            scorers=scorers,
            primary_scorer=primary,
            default_model=_optional_str(located, "default_model"),
            yaml_path=located.path,
        )


@dataclass(frozen=True)
class ComponentSpec:
    """A registered model, method or scorer: a lazy import target plus what `ls` shows."""

    name: str
    kind: str
    """model | method | scorer."""
    target: str
    """'module:attr' imported on first use, never at listing time."""
    description: str = ""
    source: str = ""
    """Paper or upstream (e.g. 'Guo et al., ICCV 2025, arXiv 2509.26231')."""
    needs: tuple[str, ...] = ()
    """Optional packages / extras the target imports (shown by `ls`, checked at load)."""
    aliases: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    """Default constructor parameters."""
    family: str | None = None
    """Models: the family whose per-model method defaults apply (sdxl-dpo → sdxl)."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Display facts for `ls` (hub id, revision, memory, scale); never passed to the target."""
    yaml_path: Path | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Methods: a registered variant's parameters (e.g. a control), applied over the per-model defaults."""
    variant_of: str | None = None
    """Methods: the method a registered variant fixes parameters of (`img-zero-tokens` → `img`)."""

    KEYS = ("name", "target", "description", "source", "needs", "aliases", "params", "family", "info", "variants")

    @classmethod
    def from_yaml(cls, located: LocatedMapping, kind: str) -> ComponentSpec:
        check_keys(located, list(cls.KEYS), f"{kind} spec")
        target = _required_str(located, "target", f"{kind} spec")
        if ":" not in target:
            raise UserError(f"{located.where('target')}: target must look like 'package.module:Class', "
                            f"got {target!r}.")
        return cls(
            name=_required_str(located, "name", f"{kind} spec"),
            kind=kind,
            target=target,
            description=str(located.data.get("description", "")),
            source=str(located.data.get("source", "")),
            needs=_str_list(located, "needs"),
            aliases=_str_list(located, "aliases"),
            params=_mapping(located, "params"),
            family=located.data.get("family"),
            info=_mapping(located, "info"),
            yaml_path=located.path,
        )

    def variants(self, located: LocatedMapping) -> list[ComponentSpec]:
        """Registered variants (`variants: {name: {description, params}}` in a method YAML): the same target with
        parameters fixed, listed and run under their own names so a control is one `--method` away."""
        entries = _mapping(located, "variants")
        if entries and self.kind != "method":
            raise UserError(f"{located.where('variants')}: only methods have registered variants.")
        specs = []
        for name, entry in entries.items():
            if not isinstance(entry, Mapping) or set(entry) - {"description", "params"} or \
                    not isinstance(entry.get("params", {}), Mapping):
                raise UserError(f"{located.where('variants')}: variant {name!r} must be a mapping with 'description' "
                                f"and 'params' (a mapping) only.")
            specs.append(replace(self, name=str(name), aliases=(), fixed=dict(entry.get("params", {})),
                                 description=str(entry.get("description", "")), variant_of=self.name))
        return specs


@dataclass(frozen=True)
class MethodDefaults:
    """Per-model method defaults: `methods/<method>/<model or family>.yaml` (DESIGN §4)."""

    params: Mapping[str, Any]
    description: str = ""
    yaml_path: Path | None = None

    KEYS = ("params", "description")

    @classmethod
    def from_yaml(cls, located: LocatedMapping) -> MethodDefaults:
        check_keys(located, list(cls.KEYS), "per-model method defaults")
        return cls(params=_mapping(located, "params"), description=str(located.data.get("description", "")),
                   yaml_path=located.path)

