"""The `shapes` model API on a tiny trained snapshot: determinism, batch independence, refusals, runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shapes_helpers import tiny_snapshot

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.cli import main as cli_main
from imgbench.components import build_model
from imgbench.errors import UserError
from imgbench.worlds.shapes.model import ShapesModel
from imgbench.worlds.shapes.tasks import split_prompts


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return tiny_snapshot(tmp_path_factory.mktemp("shapes-train"))


def _requests(n_prompts=3, seeds=(0, 1)):
    return [GenerationRequest(p, s, 32, 32) for p in split_prompts("val")[:n_prompts] for s in seeds]


@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_images_do_not_depend_on_batch(snapshot, guidance):
    model = ShapesModel(model_path=str(snapshot), guidance=guidance, steps=4)
    requests = _requests()
    together = [np.asarray(im) for im in model.generate(requests)]
    alone = [np.asarray(model.generate([r])[0]) for r in reversed(requests)][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    assert together[0].shape == (32, 32, 3)
    assert not np.array_equal(together[0], together[1])  # seeds 0 and 1 differ


def test_generation_leaves_global_rng_alone(snapshot):
    import torch

    model = ShapesModel(model_path=str(snapshot), steps=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model.generate(_requests(1, (0,)))
    assert torch.equal(torch.rand(3), expected)


def test_refuses_words_outside_the_world(snapshot):
    model = ShapesModel(model_path=str(snapshot), steps=2)
    request = GenerationRequest(Prompt(id="0", text="an astronaut riding a red horse"), 0, 32, 32)
    with pytest.raises(UserError, match="astronaut, riding, horse.*Colours: red"):
        model.generate([request])
    with pytest.raises(UserError, match="32x32"):
        model.generate([GenerationRequest(split_prompts("val")[0], 0, 64, 64)])
    with pytest.raises(UserError, match="IP-Adapter"):
        model.generate(_requests(1, (0,)), image_tokens=[[0.0]], ip_scale=0.5)


def test_identity_keys_weights_and_sampling(snapshot):
    a = ShapesModel(model_path=str(snapshot), guidance=1.0).identity()
    b = ShapesModel(model_path=str(snapshot), guidance=2.0).identity()
    assert a["weights_sha256"] == b["weights_sha256"] and a != b
    states = ShapesModel(model_path=str(snapshot)).encode_text(["a red circle", "two squares"])
    assert tuple(states.shape[:2]) == (2, 16)


def test_missing_weights_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="imgbench train shapes unet"):
        build_model("shapes", {}, model_path=str(tmp_path))


def test_run_on_the_shapes_task_end_to_end(snapshot, tmp_path):
    code = cli_main(["run", "--task", "shapes", "--model-path", str(snapshot), "--model-arg", "steps=2",
                     "--limit", "2", "--seeds", "0", "--batch-size", "2", "--output", str(tmp_path)])
    assert code == 0
    metrics = list(tmp_path.rglob("metrics.json"))
    assert len(metrics) == 1 and "shapes-exact" in metrics[0].read_text()
    scores = list(tmp_path.rglob("scores/shapes-exact@*.jsonl"))
    assert scores and '"reason"' in scores[0].read_text()


def test_without_batch_size_the_model_preferred_batch_is_used(snapshot, tmp_path):
    code = cli_main(["generate", "--task", "shapes", "--model-path", str(snapshot), "--model-arg", "steps=2",
                     "--limit", "1", "--seeds", "0", "--output", str(tmp_path)])
    assert code == 0
    (records,) = tmp_path.rglob("generations.jsonl")
    assert json.loads(records.read_text().splitlines()[0])["batch_size"] == 64


def test_drawbench_like_prompts_are_refused_by_the_cli(snapshot, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a photo of a cat\n")
    code = cli_main(["run", "--prompts", str(prompts), "--model", "shapes", "--model-path", str(snapshot),
                     "--scorer", "shapes-exact", "--output", str(tmp_path / "out")])
    assert code == 2
