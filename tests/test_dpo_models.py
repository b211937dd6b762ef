"""Diffusion-DPO beyond the loop: SD 1.5 and SDXL conditioning on tiny pipelines, the CLI end to end on the shapes
UNet (export, `unet_path`, `shapes-dpo`, held-out evaluation), and the errors a user can fix (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from dpo_helpers import one_thread, same, weights  # noqa: F401 - one_thread: autouse fixture
from models_support import folders, make_model, max_diff, requests
from shapes_helpers import tiny_snapshot

from imgbench import catalog
from imgbench.components import build_model, resolve_method_params
from imgbench.dpo.backbones import build_backbone
from imgbench.dpo.data import PairData
from imgbench.dpo.trainer import DPOConfig, DPOTrainer
from imgbench.testing import render_pairs
from imgbench.worlds.shapes.model import ShapesModel

PROMPTS = ["a red cat on a box", "the blue dog"]
PICKAPIC = Path(__file__).parent / "fixtures" / "img" / "pickapic_v2_tiny.parquet"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo-cli")
    return {"snapshot": tiny_snapshot(root / "unet-train"), "pairs": render_pairs(root / "pairs", 8), "root": root}


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_sd_unet_steps_change_only_the_policy_and_export_as_unet_path(kind, tmp_path):
    backbone, identity = build_backbone(kind, {}, str(folders()[kind]), "cpu", 32)
    data = PairData(render_pairs(tmp_path / "pairs", 4, prompts=PROMPTS))
    condition = backbone.condition(PROMPTS)
    if kind == "sdxl":  # both encoders' states, the pooled projection and (R, R, 0, 0, R, R)
        assert condition["encoder_hidden_states"].shape == (2, 77, 64)
        assert condition["added_cond_kwargs"]["time_ids"].tolist() == [[32, 32, 0, 0, 32, 32]] * 2
        assert condition["added_cond_kwargs"]["text_embeds"].shape == (2, 32)
    else:
        assert set(condition) == {"encoder_hidden_states"} and condition["encoder_hidden_states"].shape == (2, 77, 32)
    assert backbone.scheduler.config.prediction_type == "epsilon" and backbone.latent_shape == (4, 16, 16)
    frozen = {name: weights(getattr(backbone.pipe, name)) for name in ("vae", "text_encoder")}
    config = DPOConfig(model=kind, model_path=str(folders()[kind]), pairs=data.identity, batch=2, warmup=0,
                       lr=1e-3, beta=100.0, resolution=32)
    trainer = DPOTrainer(config, tmp_path / "w", backbone, data)
    start, reference = weights(trainer.policy), weights(trainer.reference)
    losses = [trainer.train_step() for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert not same(weights(trainer.policy), start) and same(weights(trainer.reference), reference)
    assert all(same(weights(getattr(backbone.pipe, name)), before) for name, before in frozen.items())
    out = trainer.export(tmp_path / "out", {"data": {"seeds": [[90_000, 90_007]], "split_version": None}})
    base, tuned = make_model(kind, ip=False), make_model(kind, ip=False, unet_path=str(out))
    assert max_diff(base.generate(requests()[:1])[0], tuned.generate(requests()[:1])[0]) > 0
    assert tuned.parts()[0]["seeds"] == [[90_000, 90_007]] and base.parts() == []


def test_cli_trains_sd15_on_a_pickapic_folder(tmp_path, cli):
    folder = tmp_path / "pickapic"
    folder.mkdir()
    shutil.copy(PICKAPIC, folder / "train-00000.parquet")  # 8×8 JPEGs, resized and cropped to --resolution
    status, _, _ = cli("train", "dpo", "--model", "sd15", "--model-path", folders()["sd15"], "--pairs", folder,
                       "--resolution", "32", "--batch", "2", "--accumulate", "2", "--steps", "2", "--warmup", "0",
                       "--caption-dropout", "0.2", "--workdir", tmp_path / "w", "--out", tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert status == 0 and manifest["step"] == 2 and manifest["pairs"]["n"] == 4
    assert manifest["pairs"]["files"] == [["train-00000.parquet", PICKAPIC.stat().st_size]]
    assert manifest["data"]["seeds"] is None and manifest["base_model"]["family"] == "sd15"


def test_cli_trains_the_shapes_unet_exports_it_and_evaluates_it(shapes, cli, caplog):
    root, snapshot = shapes["root"], str(shapes["snapshot"])
    out, work = root / "out", root / "work"
    args = ["train", "dpo", "--model", "shapes", "--model-path", snapshot, "--pairs", shapes["pairs"], "--workdir",
            work, "--out", out, "--batch", "4", "--warmup", "0", "--lr", "1e-3", "--beta", "50", "--log-every", "1"]
    assert cli(*args, "--steps", "2", "--minutes", "1e-6")[0] == 0  # stops after one step: checkpoint only
    assert not out.exists() and (work / "checkpoint.pt").is_file()
    assert cli(*args, "--steps", "2")[0] == 0  # resumes at step 1, then exports
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["train_wall_seconds"] > 0
    assert manifest["config"]["beta"] == 50 and manifest["config"]["pairs"]["sha256"] == manifest["pairs"]["sha256"]
    assert manifest["data"] == {"split_version": 2, "seeds": [[90_000, 90_015]], "pairs": str(shapes["pairs"]),
                                "note": "seeds of the pairs' winner and loser images"}
    assert 0 <= manifest["final"]["reward_accuracy"] <= 1 and manifest["final"]["loss"] > 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    # usable as the shapes model's UNet, by path and through the shapes-dpo entry; its seeds are a listed part
    base, tuned = ShapesModel(model_path=snapshot), ShapesModel(model_path=snapshot, unet_path=str(out))
    assert tuned.identity()["weights_sha256"] != base.identity()["weights_sha256"]
    assert tuned.parts()[0]["seeds"] == [[90_000, 90_015]] and base.parts() == []
    spec, entry = build_model("shapes-dpo", {"model_path": snapshot, "unet_path": str(out)})
    assert spec.family == "shapes" and entry.identity() == tuned.identity()
    assert not same(weights(tuned.load_networks()[2]), weights(base.load_networks()[2]))
    # a run on one of the pairs' seeds records the part and says the result is not held out
    status, _, _ = cli("generate", "--task", "shapes", "--model", "shapes", "--model-arg", f"model_path={snapshot}",
                       "--model-arg", f"unet_path={out}", "--limit", "1", "--seeds", "90003", "--output",
                       root / "results")
    (run_json,) = (root / "results").rglob("run.json")
    assert status == 0 and json.loads(run_json.read_text())["parts"] == tuned.parts()
    assert "seed(s) 90003" in caplog.text and "not held out" in caplog.text
    # held-out evaluation: here the training pairs themselves, which the command flags as not held out
    report = root / "eval.json"
    status, stdout, _ = cli("train", "dpo-eval", "--unet", out, "--pairs", shapes["pairs"], "--timesteps", "2",
                            "--out", report)
    result = json.loads(report.read_text())
    assert status == 0 and "implicit reward accuracy" in stdout
    assert result["n_pairs"] == 8 and 0 <= result["reward_accuracy"] <= 1
    for low, high in (result["ci95_prompt_bootstrap"], result["ci95_wilson"]):
        assert 0 <= low <= result["reward_accuracy"] <= high <= 1
    assert result["not_held_out"] and "not held out" in result["not_held_out"][0]
    # the reference must be the UNet's starting point: other starting weights are refused
    manifest["config"]["base_sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    status, _, err = cli("train", "dpo-eval", "--unet", out, "--pairs", shapes["pairs"])
    assert status == 2 and "is not the one" in err


def test_shapes_dpo_uses_the_shapes_img_defaults():
    img = catalog.methods().get("img").spec
    dpo, shapes_spec = catalog.models().get("shapes-dpo").spec, catalog.models().get("shapes").spec
    assert dpo.family == "shapes"
    assert resolve_method_params(img, dpo, {}) == resolve_method_params(img, shapes_spec, {})


def test_shapes_dpo_without_weights_names_the_training_command(cli, tmp_path, monkeypatch):
    from imgbench.worlds.shapes import model as shapes_model

    monkeypatch.setattr(shapes_model, "SHIPPED_DPO", tmp_path / "weights-dpo")  # a checkout without the weights
    status, _, err = cli("run", "--task", "shapes", "--model", "shapes-dpo", "--limit", "1", "--output", tmp_path)
    assert status == 2
    assert "imgbench train dpo --model shapes --pairs results/runs/img-shapes/pairs.jsonl" in err


def _records(tmp_path, **change):
    pairs = render_pairs(tmp_path / "pairs", 2)
    rows = [{**json.loads(line), **change} for line in pairs.read_text().splitlines()]
    pairs.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows))
    return pairs


def _val_caption() -> str:
    from imgbench.worlds.shapes.grammar import splits

    return splits()["val"]["counting"][0][0]


@pytest.mark.parametrize("bad, message", [
    ({"winner_seed": 3}, "outside the range for method parts"),
    ({"prompt": "a photo of a cat"}, "outside its world"),
    ({"prompt": _val_caption()}, "not shapes train captions"),
    ({"winner_seed": None}, "winner_seed and loser_seed"),
])
def test_shapes_pairs_that_break_the_held_out_rules_are_refused(shapes, tmp_path, cli, bad, message):
    status, _, err = cli("train", "dpo", "--model", "shapes", "--model-path", shapes["snapshot"], "--pairs",
                         _records(tmp_path, **bad), "--workdir", tmp_path / "w", "--out", tmp_path / "o")
    assert status == 2 and message in err and not (tmp_path / "w").exists()


@pytest.mark.parametrize("bad, message", [
    (["--beta", "0"], "--beta"), (["--beta", "-5"], "--beta"), (["--batch", "0"], "--batch"),
    (["--lr", "0"], "--lr"), (["--caption-dropout", "1.5"], "--caption-dropout"), (["--steps", "0"], "--steps"),
])
def test_out_of_range_numbers_exit_2(tmp_path, capsys, bad, message):
    from imgbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dpo", "--model", "shapes", "--pairs", "p.jsonl", "--workdir", str(tmp_path / "w"), "--out",
              str(tmp_path / "o"), *bad])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_user_errors_exit_2_with_the_fix(shapes, tmp_path, cli):
    common = ["--workdir", tmp_path / "w", "--out", tmp_path / "o"]
    status, _, err = cli("train", "dpo", "--model", "shapes", "--pairs", tmp_path / "missing.jsonl", *common)
    assert status == 2 and "not found" in err and "imgbench pairs" in err
    status, _, err = cli("train", "dpo", "--model", "dummy", "--pairs", shapes["pairs"], *common)
    assert status == 2 and "sd15, sdxl, shapes" in err
    status, _, err = cli("train", "dpo", "--model", "shapes", "--pairs", shapes["pairs"], "--batch", "4",
                         "--accumulate", "3", *common)
    assert status == 2 and "accumulate" in err
    status, _, err = cli("train", "dpo-eval", "--unet", tmp_path / "nothing", "--pairs", shapes["pairs"])
    assert status == 2 and "imgbench train dpo --out DIR" in err
    assert not (tmp_path / "w").exists()
