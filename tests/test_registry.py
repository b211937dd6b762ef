"""Registries: lazy targets, aliases, duplicates, did-you-mean, entry-point plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from imgbench import catalog
from imgbench.api.registry import Registry, import_target
from imgbench.api.specs import ComponentSpec
from imgbench.errors import UserError


def _spec(name: str, target: str = "imgbench.testing:DummyModel") -> ComponentSpec:
    return ComponentSpec(name=name, kind="model", target=target)


def test_aliases_resolve_to_the_same_entry():
    registry: Registry[ComponentSpec] = Registry("model")
    registry.register("sdxl", _spec("sdxl"), origin="a.yaml", aliases=("sdxl-base",))
    assert registry.get("sdxl-base") is registry.get("sdxl")
    assert "sdxl-base" in registry and registry.names() == ["sdxl"]


def test_duplicate_names_and_aliases_raise_naming_both_origins():
    registry: Registry[ComponentSpec] = Registry("model")
    registry.register("sdxl", _spec("sdxl"), origin="a.yaml", aliases=("xl",))
    with pytest.raises(UserError, match="duplicate model name 'sdxl'.*a.yaml.*b.yaml"):
        registry.register("sdxl", _spec("sdxl"), origin="b.yaml")
    with pytest.raises(UserError, match="duplicate model name 'xl'"):
        registry.register("other", _spec("other"), origin="c.yaml", aliases=("xl",))


def test_unknown_name_suggests_and_lists():
    registry: Registry[ComponentSpec] = Registry("task")
    for name in ("drawbench", "geneval", "tiny"):
        registry.register(name, _spec(name), origin="x")
    with pytest.raises(UserError) as info:
        registry.get("drawbnch")
    message = str(info.value)
    assert "unknown task 'drawbnch' — did you mean 'drawbench'?" in message
    assert "drawbench, geneval, tiny" in message


def test_targets_are_lazy_and_missing_packages_name_the_fix():
    # Registering a target whose module does not exist is fine; only loading it fails, clearly.
    registry: Registry[ComponentSpec] = Registry("model")
    registry.register("ghost", _spec("ghost", "not_a_real_package.module:Thing"), origin="x")
    with pytest.raises(UserError, match="not_a_real_package.*pip install"):
        import_target(registry.get("ghost").spec.target)
    with pytest.raises(UserError, match="has no attribute 'Nope'"):
        import_target("imgbench.testing:Nope")


def test_builtin_catalog_has_the_core_entries():
    assert "tiny" in catalog.tasks()
    assert {"base", "dummy"} <= set(catalog.methods().names())
    assert "dummy" in catalog.models() and "dummy" in catalog.scorers()


def test_entry_point_plugins_are_registered(tmp_path):
    """A third-party distribution adds a scorer through the `imgbench.scorers` entry-point group."""
    package = tmp_path / "myplugin"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        from imgbench.testing import DummyScorer

        class BrightScorer(DummyScorer):
            name = "bright"
    """))
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[imgbench.scorers]\nbright = myplugin:BrightScorer\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from imgbench import catalog; "
            "e = catalog.scorers().get('bright'); print(e.origin, e.spec.target)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert "entry point imgbench.scorers:bright myplugin:BrightScorer" in out.stdout
