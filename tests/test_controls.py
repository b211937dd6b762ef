"""Controls that locate a gain (imgbench/controls.py): registered variants of img, and `reroll`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgbench import catalog
from imgbench.api.records import GenerationRequest, Prompt
from imgbench.cli import main as cli
from imgbench.components import resolve_method_params
from imgbench.controls import REROLL_OFFSET, partner_prompts, random_norm_matched
from imgbench.store import RunStore
from imgbench.worlds.shapes.model import ShapesModel
from imgbench.worlds.shapes.tasks import split_prompts


def test_random_tokens_match_each_norm_and_depend_only_on_the_item():
    tokens = torch.randn(3, 4, 8) * torch.arange(1, 13, dtype=torch.float32).reshape(3, 4, 1)
    keys = [("a", 0), ("b", 0), ("a", 1)]
    out = random_norm_matched(tokens, keys)
    assert torch.allclose(out.norm(dim=-1), tokens.norm(dim=-1), rtol=1e-5)
    assert not torch.allclose(out, tokens)
    again = random_norm_matched(tokens[[2, 0]], [keys[2], keys[0]])  # another batch, another order
    assert torch.equal(again[0], out[2]) and torch.equal(again[1], out[0])
    cosine = torch.nn.functional.cosine_similarity(out.flatten(1), tokens.flatten(1))
    assert cosine.abs().max() < 0.9  # a direction of its own


def test_partners_are_the_next_prompt_of_the_same_first_tag():
    prompts = [Prompt(id="c0", text="x", tags=("colors",)), Prompt(id="n0", text="x", tags=("counting",)),
               Prompt(id="c1", text="x", tags=("colors",)), Prompt(id="c2", text="x", tags=("colors", "b")),
               Prompt(id="alone", text="x", tags=("position",))]
    partners = {k: v.id for k, v in partner_prompts(prompts).items()}
    assert partners == {"c0": "c1", "c1": "c2", "c2": "c0", "n0": "c1", "alone": "c0"}


@pytest.mark.parametrize(("name", "control"), [("img-own-tokens", "own-tokens"), ("img-zero-tokens", "zero-tokens"),
                                               ("img-random-tokens", "random-tokens"),
                                               ("img-other-guidance", "other-guidance")])
def test_controls_are_registered_variants_over_the_per_model_defaults(name, control):
    spec = catalog.methods().get(name).spec
    assert spec.variant_of == "img" and spec.target == catalog.methods().get("img").spec.target
    params = resolve_method_params(spec, catalog.models().get("shapes").spec, {})
    assert params["control"] == control and params["aligner"] == "shapes/aligner.safetensors"
    assert params["guidance"] == ("finetuned-mllm" if control == "other-guidance" else "none")


@pytest.fixture(scope="module")
def control_runs(tmp_path_factory):
    """Two counting prompts of the test split (seed 3) through img, every control and reroll."""
    out = tmp_path_factory.mktemp("controls")
    common = ["--task", "shapes", "--tags", "counting", "--limit", "2", "--seeds", "3", "--batch-size", "64",
              "--scorer", "shapes-exact", "--output", str(out)]
    for method in ("base", "img", "img-own-tokens", "img-zero-tokens", "img-random-tokens", "img-other-guidance",
                   "reroll"):
        assert cli(["run", "--method", method, *common]) == 0, method
    assert cli(["run", "--method", "img", "--method-arg", "guidance=none", *common]) == 0
    runs = {}
    for folder in (out / "runs" / "shapes" / "shapes").iterdir():
        for run in folder.iterdir():
            runs.setdefault(folder.name, []).append(RunStore(run))
    return runs


def _images(store: RunStore) -> dict[tuple[str, int], np.ndarray]:
    return {key: np.asarray(Image.open(store.resolve_image(r["image"])))
            for key, r in store.load_generations().items()}


def test_own_tokens_is_guidance_none_under_a_name(control_runs):
    (own,), img = control_runs["img-own-tokens"], control_runs["img"]
    assert own.root.name in {run.root.name for run in img}  # the same identity, so the same run id
    twin = next(run for run in img if run.root.name == own.root.name)
    assert {k: v.tobytes() for k, v in _images(own).items()} == {k: v.tobytes() for k, v in _images(twin).items()}


def test_zero_tokens_regenerate_with_the_adapters_null_tokens(control_runs):
    (run,) = control_runs["img-zero-tokens"]
    model = ShapesModel()
    prompts = {p.id: p for p in split_prompts("test")}
    for (prompt_id, seed), pixels in _images(run).items():
        request = GenerationRequest(prompts[prompt_id], seed, 32, 32)
        (expected,) = model.generate([request], image_tokens=model.null_image_tokens(1), ip_scale=0.2)
        assert np.array_equal(np.asarray(expected), pixels)


def test_random_tokens_and_other_guidance_change_the_regeneration(control_runs):
    (own,) = control_runs["img-own-tokens"]
    reference = _images(own)
    for name in ("img-random-tokens", "img-other-guidance"):
        (run,) = control_runs[name]
        images = _images(run)
        assert images.keys() == reference.keys()
        assert any(not np.array_equal(images[k], reference[k]) for k in images), name
    (other,) = control_runs["img-other-guidance"]
    infos = {k: r["info"] for k, r in other.load_generations().items()}
    assert {i["guidance_from_prompt"] for i in infos.values()} == {"counting-0001", "counting-0002"}
    assert all(i["initial_image"]["reused_from_run"] for i in infos.values())  # the base run's images


def test_reroll_draws_the_item_with_its_seed_plus_the_offset(control_runs):
    (run,) = control_runs["reroll"]
    model = ShapesModel()
    prompts = {p.id: p for p in split_prompts("test")}
    for (prompt_id, seed), pixels in _images(run).items():
        (expected,) = model.generate([GenerationRequest(prompts[prompt_id], seed + REROLL_OFFSET, 32, 32)])
        assert np.array_equal(np.asarray(expected), pixels) and seed == 3
    records = run.load_generations()
    assert {r["info"]["drawn_with_seed"] for r in records.values()} == {3 + REROLL_OFFSET}


def test_control_runs_record_their_parts(control_runs):
    (run,) = control_runs["img-other-guidance"]
    parts = json.loads(Path(run.run_json).read_text())["parts"]
    assert [p["name"].split()[0] for p in parts] == ["aligner", "mllm"]
    (base,) = control_runs["base"]
    assert json.loads(Path(base.run_json).read_text())["parts"] == []


def test_unknown_control_and_bad_offset_are_user_errors(tmp_path, capsys):
    common = ["--task", "shapes", "--limit", "1", "--seeds", "0", "--output", str(tmp_path)]
    assert cli(["run", "--method", "img", "--method-arg", "control=nope", *common]) == 2
    assert "the controls are own-tokens" in capsys.readouterr().err
    assert cli(["run", "--method", "img-other-guidance", "--method-arg", "guidance=none", *common]) == 2
    assert cli(["run", "--method", "reroll", "--method-arg", "offset=0", *common]) == 2
    assert not (tmp_path / "runs").exists()
