"""IMG on the shapes world: the per-model defaults, the world's MLLMs by name, and files shipped beside the method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from imgbench.methods.img import method as img_method

from imgbench import catalog
from imgbench.cli import main as cli
from imgbench.components import resolve_method_params
from imgbench.errors import UserError
from imgbench.mllm.hf import load_mllm

SHIPPED = Path(img_method.__file__).parent


def test_shapes_defaults_name_files_that_ship() -> None:
    params = resolve_method_params(catalog.methods().get("img").spec, catalog.models().get("shapes").spec, {})
    assert params["mllm"] == "shapes-llava" and params["original_mllm"] == "shapes-llava-base"
    for key in ("aligner", "templates"):
        assert not Path(params[key]).is_absolute()
        assert (SHIPPED / params[key]).is_file(), f"{key}: {params[key]} does not ship under methods/img/"
    assert (SHIPPED / params["aligner"]).stat().st_size <= 10 * 2**20
    templates = json.loads((SHIPPED / params["templates"]).read_text())
    assert templates == ["How to make the image match the prompt: {prompt}?"]  # what shapes-llava was trained on


def test_shipped_resolves_beside_the_method_only_when_missing_here(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert img_method.shipped("shapes/templates.json") == str(SHIPPED / "shapes/templates.json")
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "templates.json").write_text("[]")
    assert img_method.shipped("shapes/templates.json") == "shapes/templates.json"  # the working directory wins
    assert img_method.shipped("nowhere.json") == "nowhere.json"  # left for the loader to report


def test_world_mllms_load_by_name() -> None:
    from imgbench.worlds.shapes.llava import ShapesLlava

    mllm = load_mllm("shapes-llava")
    assert isinstance(mllm, ShapesLlava) and mllm.question.startswith("How to make")
    with pytest.raises(UserError):
        load_mllm("shapes-llava-nope")


def test_img_on_shapes_runs_out_of_the_box(tmp_path, monkeypatch) -> None:
    """The README's first command at one prompt: defaults only; identity keeps paths as written."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "results"
    common = ["--task", "shapes", "--limit", "1", "--seeds", "0-1", "--batch-size", "64", "--output", str(out)]
    assert cli(["run", "--method", "base", *common]) == 0
    assert cli(["run", "--method", "img", *common]) == 0
    (run,) = (out / "runs" / "shapes" / "shapes" / "img").iterdir()
    manifest = json.loads((run / "run.json").read_text())
    text = json.dumps(manifest["identity"])
    assert str(SHIPPED) not in text and "shapes/aligner.safetensors" in text
    records = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert len(records) == 2
    assert all(r["info"]["initial_image"]["reused_from_run"] for r in records)
    assert records[0]["info"]["question"].startswith("How to make the image match the prompt: ")
