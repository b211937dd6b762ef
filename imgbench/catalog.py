"""Discovery: fills the task, model, method and scorer registries from YAML and entry points.

Everything here reads YAML only; no target is imported, so listing stays fast and torch-free.
Built-in folders: tasks/**.yaml (files starting with '_' are include-only templates),
methods/<name>/method.yaml, imgbench/models/catalog/*.yaml, imgbench/scorers/catalog/*.yaml.
Third-party plugins add entries through the entry-point groups `imgbench.tasks` (a package
whose folder holds task YAMLs), `imgbench.methods`, `imgbench.models` and `imgbench.scorers`
(each a 'module:attr' target).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from importlib.metadata import entry_points
from pathlib import Path

from imgbench.api.registry import Registry
from imgbench.api.specs import ComponentSpec, MethodDefaults, TaskSpec
from imgbench.util.yamlfile import load_yaml_mapping

logger = logging.getLogger(__name__)

KINDS = ("task", "model", "method", "scorer")


def package_dir(package: str) -> Path:
    """The folder of a package without importing it (works for wheels and editable installs)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} not found: is imgbench installed (pip install -e .)?")
    return Path(next(iter(spec.submodule_search_locations)))


def _task_yamls(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.yaml") if not p.name.startswith("_"))


def _plugin_entry_points(kind: str) -> list:
    return list(entry_points(group=f"imgbench.{kind}s"))


@functools.cache
def tasks() -> Registry[TaskSpec]:
    registry: Registry[TaskSpec] = Registry("task")
    folders = [package_dir("imgbench.tasks")]
    for ep in _plugin_entry_points("task"):
        folders.append(package_dir(ep.value))
    for folder in folders:
        for path in _task_yamls(folder):
            spec = TaskSpec.from_yaml(load_yaml_mapping(path))
            registry.register(spec.name, spec, origin=str(path))
    return registry


def _component_registry(kind: str, yamls: list[Path]) -> Registry[ComponentSpec]:
    registry: Registry[ComponentSpec] = Registry(kind)
    for path in yamls:
        located = load_yaml_mapping(path)
        spec = ComponentSpec.from_yaml(located, kind)
        registry.register(spec.name, spec, origin=str(path), aliases=spec.aliases)
        for variant in spec.variants(located):
            registry.register(variant.name, variant, origin=f"{path} (variant of {spec.name})")
    for ep in _plugin_entry_points(kind):
        dist = getattr(ep.dist, "name", "a plugin")
        spec = ComponentSpec(name=ep.name, kind=kind, target=ep.value, description=f"plugin from {dist}")
        registry.register(ep.name, spec, origin=f"entry point imgbench.{kind}s:{ep.name}")
    return registry


@functools.cache
def models() -> Registry[ComponentSpec]:
    return _component_registry("model", sorted((package_dir("imgbench.models") / "catalog").glob("*.yaml")))


@functools.cache
def methods() -> Registry[ComponentSpec]:
    return _component_registry("method", sorted(package_dir("imgbench.methods").glob("*/method.yaml")))


@functools.cache
def scorers() -> Registry[ComponentSpec]:
    return _component_registry("scorer", sorted((package_dir("imgbench.scorers") / "catalog").glob("*.yaml")))


def registry(kind: str) -> Registry:
    return {"task": tasks, "model": models, "method": methods, "scorer": scorers}[kind]()


def method_defaults(method: ComponentSpec, model: ComponentSpec) -> MethodDefaults | None:
    """The per-model defaults file for (method, model): `<model>.yaml`, else `<family>.yaml`."""
    if method.yaml_path is None:
        return None
    for stem in (model.name, model.family):
        if stem:
            path = method.yaml_path.parent / f"{stem}.yaml"
            if path.exists():
                return MethodDefaults.from_yaml(load_yaml_mapping(path))
    return None
