"""YAML loading that remembers where each key came from, with `include:` inheritance.

Strict specs need to say "tasks/foo.yaml:7: unknown key 'sedds'", so every top-level key keeps
its (file, line). `include: other.yaml` (a path relative to the including file) is loaded
first and the including file's keys replace its keys, as in lm-evaluation-harness task YAMLs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgbench.errors import UserError

# libyaml's parser when PyYAML was built with it: listing every spec stays well under the 0.5 s budget.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LocatedMapping:
    """A YAML mapping plus, for each top-level key, the file and line that set it."""

    data: dict[str, Any]
    origins: dict[str, tuple[Path, int]] = field(default_factory=dict)
    path: Path = Path("<memory>")

    def where(self, key: str | None = None) -> str:
        if key is not None and key in self.origins:
            file, line = self.origins[key]
            return f"{file}:{line}"
        return str(self.path)


def _key_lines(node: yaml.Node) -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines[str(key_node.value)] = key_node.start_mark.line + 1
    return lines


def load_yaml_mapping(path: str | Path, _seen: tuple[Path, ...] = ()) -> LocatedMapping:
    """Load a YAML file that must hold a mapping, resolving `include:` chains."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise UserError(f"{path}: include cycle ({chain}); remove one of the include: lines.")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found.") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read as a YAML text file ({exc}).") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()  # parsed once: the node gives key lines, then the values
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{where}: malformed YAML ({problem}); fix the syntax at that line.") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}.")
    lines = _key_lines(node) if node is not None else {}
    located = LocatedMapping(data={}, origins={}, path=path)
    include = data.pop("include", None)
    if include is not None:
        if not isinstance(include, str):
            raise UserError(f"{path}:{lines.get('include', 1)}: include: must be a relative file path.")
        parent = load_yaml_mapping(path.parent / include, (*_seen, path))
        located.data.update(parent.data)
        located.origins.update(parent.origins)
    for key, value in data.items():
        located.data[str(key)] = value
        located.origins[str(key)] = (path, lines.get(str(key), 1))
    return located
