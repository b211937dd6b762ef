"""Verified single files: IMG's official question templates and GenEval's object names."""

from __future__ import annotations

import json
import shutil

import pytest
from suites_support import PROXY_VARS, closed_port, shared_suites

from imgbench.errors import UserError
from imgbench.suites import LISTS, load_list, load_template_list


@pytest.fixture
def env(monkeypatch, tmp_path):
    for var in ("IMGBENCH_DATA_DIR", "IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", *PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def test_official_templates_from_the_data_dir(env):
    env.setenv("IMGBENCH_DATA_DIR", str(shared_suites()))
    templates = load_template_list("img-edit-instructions")
    assert len(templates) == 100 and len(set(templates)) == 97  # repeats kept: the demos draw from all 100
    assert "How to adjust the image to match the prompt: {prompt}?" in templates
    assert templates[0].format(prompt="a red cube").endswith("a red cube?")
    assert len(load_list("geneval-object-names")) == 80


def test_resaved_copy_passes_and_edited_copy_fails(env, tmp_path):
    folder = tmp_path / "data" / "img_templates"
    folder.mkdir(parents=True)
    original = json.loads((shared_suites() / "img_templates" / "edit_instructions.json").read_text("utf-8"))
    env.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    (folder / "edit_instructions.json").write_text(json.dumps(original, indent=4).replace("\n", "\r\n"))
    assert load_template_list() == original
    edited = [original[0].replace("adjust", "change"), *original[1:]]
    (folder / "edit_instructions.json").write_text(json.dumps(edited))
    with pytest.raises(UserError, match="content checksum .* differs from the official file"):
        load_template_list()


@pytest.mark.parametrize("how", ["offline", "closed proxy"])
def test_no_copy_names_url_and_path(env, tmp_path, how):
    if how == "offline":
        env.setenv("IMGBENCH_OFFLINE", "1")
    else:
        env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(UserError) as info:
        load_template_list()
    target = tmp_path / "cache" / "suites" / "img_templates" / "edit_instructions.json"
    assert "SHI-Labs/IMG-Multimodal-Diffusion-Alignment/3b7abddb533e4e15edd519ae9318c6fb760ff478" in str(info.value)
    assert str(target) in str(info.value)
    target.parent.mkdir(parents=True, exist_ok=True)  # a failed download may leave the empty folder
    shutil.copy(shared_suites() / "img_templates" / "edit_instructions.json", target)
    assert len(load_template_list()) == 100  # the path the message named is where it is then found


def test_unknown_name_and_non_template_list(env):
    env.setenv("IMGBENCH_DATA_DIR", str(shared_suites()))
    with pytest.raises(UserError, match="did you mean 'img-edit-instructions'"):
        load_template_list("img-edit-instruction")
    with pytest.raises(UserError, match="lack a {prompt} slot"):
        load_template_list("geneval-object-names")
    assert set(LISTS) == {"img-edit-instructions", "geneval-object-names"}
