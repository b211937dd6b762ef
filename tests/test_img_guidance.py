"""Question templates: the official list comes through the verified-list loader; the seeded choice is stable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from needs import shared_suites

from imgbench.errors import UserError
from imgbench.mllm.questions import build_templates, fixed_template, load_templates
from imgbench.suites.lists import LISTS, load_template_list

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(monkeypatch) -> Path:
    """The shared suite copies (IMGBENCH_DATA_DIR, else <repo>/../shared/suites, skipped when absent)."""
    folder = Path(os.environ.get("IMGBENCH_DATA_DIR") or shared_suites())
    assert (folder / "img_templates" / "edit_instructions.json").exists(), f"no template copy under {folder}"
    monkeypatch.setenv("IMGBENCH_DATA_DIR", str(folder))
    return folder


def test_official_list_is_verified(data_dir) -> None:
    templates = load_templates("official")
    assert templates.sha256 == LISTS["img-edit-instructions"].content_sha256
    assert list(templates.templates) == load_template_list("img-edit-instructions")  # the one verified loader
    assert len(templates.templates) == 100 and len(set(templates.templates)) == 97
    assert all("{prompt}" in t for t in templates.templates)


def test_tampered_copy_is_refused(data_dir, tmp_path, monkeypatch) -> None:
    items = json.loads((data_dir / "img_templates" / "edit_instructions.json").read_text())
    (tmp_path / "img_templates").mkdir()
    (tmp_path / "img_templates" / "edit_instructions.json").write_text(json.dumps(items[:-1]))
    monkeypatch.setenv("IMGBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match="content checksum"):
        load_templates("official")


def test_offline_without_a_copy_names_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMGBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="IMGBENCH_DATA_DIR") as info:
        load_templates("official")
    assert str(tmp_path / "img_templates" / "edit_instructions.json") in str(info.value)  # where to put it


def test_seeded_choice_is_stable_across_processes(data_dir) -> None:
    templates = load_templates("official")
    here = [templates.question("a red apple", s) for s in range(8)]
    assert len(set(here)) > 1  # seeds really change the question
    assert all("a red apple" in q for q in here)
    code = ("from imgbench.mllm.questions import load_templates;"
            "t = load_templates('official'); print('|'.join(t.question('a red apple', s) for s in range(8)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.strip().split("|")
    assert other == here


def test_custom_list_and_fixed_template(tmp_path) -> None:
    path = tmp_path / "world.json"
    path.write_text(json.dumps(["Fix {prompt}", "Match {prompt}"]))
    custom = build_templates(str(path))
    assert custom.question("x", 0) in ("Fix x", "Match x")
    assert custom.source == str(path) and custom.identity()["n"] == 2
    with pytest.raises(UserError, match="sha256"):
        load_templates(str(path), sha256="0" * 64)
    assert load_templates(str(path), sha256=custom.sha256).templates == custom.templates
    fixed = build_templates(template="How to make the <Image> match: {prompt}?")
    assert {fixed.question("a cat", s) for s in range(5)} == {"How to make the <Image> match: a cat?"}
    with pytest.raises(UserError, match="slot"):
        fixed_template("no slot here")
