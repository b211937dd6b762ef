"""YAML specs: include inheritance and strict keys with file and line."""

from __future__ import annotations

import pytest

from imgbench.api.specs import TaskSpec
from imgbench.errors import UserError
from imgbench.util.yamlfile import load_yaml_mapping


def _write(path, text):
    path.write_text(text)
    return path


def test_include_inherits_and_overrides(tmp_path):
    _write(tmp_path / "parent.yaml", "task: parent\nseeds: [0, 1]\nheight: 64\nwidth: 64\n"
                                     "prompts: {path: p.txt}\n")
    child = _write(tmp_path / "child.yaml", "include: parent.yaml\ntask: child\nselect_tags: [colors]\n")
    spec = TaskSpec.from_yaml(load_yaml_mapping(child))
    assert (spec.name, spec.seeds, spec.height, spec.select_tags) == ("child", (0, 1), 64, ("colors",))
    assert spec.prompts.path == "p.txt"


def test_unknown_key_names_file_line_and_valid_keys(tmp_path):
    path = _write(tmp_path / "t.yaml", "task: t\nversion: 1\nsedds: [0]\n")
    with pytest.raises(UserError) as info:
        TaskSpec.from_yaml(load_yaml_mapping(path))
    message = str(info.value)
    assert f"{path}:3" in message and "'sedds'" in message and "did you mean 'seeds'" in message
    assert "Valid keys:" in message and "primary_scorer" in message


def test_unknown_key_inherited_from_include_names_the_parent_file(tmp_path):
    parent = _write(tmp_path / "parent.yaml", "task: p\n\nwidht: 64\n")
    child = _write(tmp_path / "child.yaml", "include: parent.yaml\ntask: c\n")
    with pytest.raises(UserError, match=f"{parent}:3: unknown key 'widht'"):
        TaskSpec.from_yaml(load_yaml_mapping(child))


def test_malformed_yaml_names_the_line(tmp_path):
    path = _write(tmp_path / "bad.yaml", "task: t\nseeds: [0, 1\nheight: 3\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: malformed YAML"):
        load_yaml_mapping(path)


def test_include_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", "include: b.yaml\ntask: a\n")
    _write(tmp_path / "b.yaml", "include: a.yaml\ntask: b\n")
    with pytest.raises(UserError, match="include cycle"):
        load_yaml_mapping(tmp_path / "a.yaml")


@pytest.mark.parametrize("text, match", [
    ("task: t\nseeds: [-1]\n", "non-negative"),
    ("task: t\nheight: big\n", "height must be an integer"),
    ("version: 1\n", "missing the required key 'task'"),
    ("task: t\nscorers: [a]\nprimary_scorer: b\n", "primary_scorer 'b' is not in scorers"),
    ("task: t\nprompts: {pth: x.txt}\n", "unknown key 'pth' in prompts — did you mean 'path'"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_values_are_explained(tmp_path, text, match):
    path = _write(tmp_path / "t.yaml", text)
    with pytest.raises(UserError, match=match):
        TaskSpec.from_yaml(load_yaml_mapping(path))
