"""A generic lazy registry: names → import targets, loaded on first use.

Listing never imports a target (so `imgbench ls` never imports torch); aliases share an entry;
registering a taken name raises; an unknown name raises with a did-you-mean and the full list.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from imgbench.errors import UserError, did_you_mean
from imgbench.util.text import check_name

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its spec (for listing) and where it came from."""

    name: str
    spec: T
    origin: str
    """A YAML path or 'entry point <group>:<name>' — named in duplicate errors."""


class Registry(Generic[T]):
    """Names (and aliases) → entries of one kind (task, model, method, scorer)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, spec: T, origin: str, aliases: tuple[str, ...] = ()) -> None:
        check_name(name, f"{self.kind} name (registered by {origin})")  # it names a folder of every run
        for key in (name, *aliases):
            taken = self._entries.get(self._aliases.get(key, key))
            if taken is not None:
                raise UserError(
                    f"duplicate {self.kind} name {key!r}: defined in {taken.origin} and in {origin}; rename one."
                )
        self._entries[name] = Entry(name=name, spec=spec, origin=origin)
        for alias in aliases:
            self._aliases[alias] = name

    def get(self, name: str) -> Entry[T]:
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise UserError(did_you_mean(name, [*self._entries, *self._aliases], self.kind))
        return self._entries[key]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)


def import_target(target: str, needs: tuple[str, ...] = (), what: str = "") -> Any:
    """Import 'module:attr'; a missing optional package becomes a message naming the fix."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        extra = f" It needs: {', '.join(needs)}." if needs else ""
        raise UserError(
            f"{what or target} cannot be loaded: Python package {missing!r} is not installed.{extra} "
            f"Install the heavy extras with `pip install 'imgbench[torch]'`."
        ) from None
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise UserError(f"{what or target}: module {module_name!r} has no attribute {attr!r}.") from None
    return obj
