"""shapes-detector: deterministic, resumable training; batch-independent detection; the oracle; the eval's counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imgbench.cli import main as cli_main
from imgbench.errors import UserError
from imgbench.provenance import data_record
from imgbench.worlds.shapes import checker
from imgbench.worlds.shapes.detector import Found, ShapesDetector, box_of, oracle
from imgbench.worlds.shapes.detector_eval import summarize, tally
from imgbench.worlds.shapes.grammar import spec_of
from imgbench.worlds.shapes.render import render
from imgbench.worlds.shapes.train_detector import DetectorTrainConfig, DetectorTrainer


def _scene(seed: int):
    objects = [{"shape": "circle", "color": "red", "count": 1}, {"shape": "triangle", "color": "blue", "count": 1}]
    return render(spec_of("scene", objects), seed)


@pytest.fixture()
def drawings(tmp_path):
    """A stand-in for llava-data: a few renders with the seed record `data_of` requires."""
    path = tmp_path / "drawings.npz"
    np.savez(path, pixels=np.stack([np.asarray(_scene(1_000 + i)) for i in range(6)]),
             questions=np.array(["q"] * 6), answers=np.array(["a"] * 6))
    path.with_suffix(".json").write_text(json.dumps({"data": data_record(range(1_000, 1_006), 2, captions="train")}))
    return str(path)


def _config(drawings: str) -> DetectorTrainConfig:
    return DetectorTrainConfig(generated=drawings, renders=6, batch=4, width=4, warmup=1)


def _weights(trainer: DetectorTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_first_steps_are_bit_identical_across_runs(tmp_path, drawings):
    runs = []
    for name in ("a", "b"):
        trainer = DetectorTrainer(_config(drawings), tmp_path / name)
        trainer.run(3, log_every=1)
        runs.append(_weights(trainer))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, drawings):
    whole = DetectorTrainer(_config(drawings), tmp_path / "whole")
    whole.run(4, log_every=1)
    DetectorTrainer(_config(drawings), tmp_path / "split").run(2, log_every=1)
    resumed = DetectorTrainer(_config(drawings), tmp_path / "split")
    assert resumed.step == 2
    resumed.run(4, log_every=1)
    assert all(torch.equal(whole.model.state_dict()[k], v) for k, v in resumed.model.state_dict().items())


def test_export_records_train_seeds_and_detect_is_batch_independent(tmp_path, drawings):
    trainer = DetectorTrainer(_config(drawings), tmp_path / "w")
    trainer.run(2, log_every=1)
    out = trainer.export(tmp_path / "detector")
    seeds = json.loads((out / "manifest.json").read_text())["data"]["seeds"]
    assert seeds == [[1_000, 1_005], [20_000, 20_005]]
    detector = ShapesDetector(out)
    images = [_scene(s) for s in (5, 6, 7)] + [_scene(8).resize((64, 64))]
    alone = [detector.detect([image])[0] for image in images]
    together = detector.detect(images)
    assert detector.calls == len(images) + 1
    for one, many in zip(alone, together, strict=True):
        assert [f.to_json() for f in one] == [f.to_json() for f in many]
        assert all(np.array_equal(a.mask, b.mask) for a, b in zip(one, many, strict=True))
    assert detector.identity()["sha256"] == ShapesDetector(out).identity()["sha256"]


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(UserError, match="imgbench train shapes detector"):
        ShapesDetector(tmp_path)


def test_oracle_is_the_checkers_reading():
    image = _scene(3)
    (found,) = oracle([image])
    reading = checker.objects(image)
    assert [(f.color, f.shape, f.score) for f in found] == [(d.color, d.shape, 1.0) for d, _ in reading]
    assert all(np.array_equal(f.mask, m) and f.box == box_of(m) for f, (_, m) in zip(found, reading, strict=True))


def _found(color: str, shape: str, top: int, left: int, size: int, score: float = 1.0) -> Found:
    mask = np.zeros((32, 32), bool)
    mask[top:top + size, left:left + size] = True
    return Found(color, shape, box_of(mask), score, mask)


def test_eval_counts_a_hand_made_case():
    truth = [_found("red", "square", 2, 2, 8), _found("blue", "circle", 20, 20, 8), _found("other", "other", 2, 20, 6)]
    found = [_found("red", "circle", 2, 2, 8, 0.9),  # the red object, shape wrong
             _found("green", "square", 12, 12, 4, 0.8),  # nothing there: a false positive
             _found("yellow", "square", 2, 20, 6, 0.7)]  # on the off-palette blob: ignored
    counts = tally(found, truth)
    assert (counts["tp"], counts["fp"], counts["fn"], counts["ignored"]) == (1, 1, 1, 1)
    summary = summarize([counts, tally(truth[:2], truth)])
    assert summary["precision"] == round(3 / 4, 4) and summary["recall"] == 0.75
    assert summary["color_accuracy"] == 1.0 and summary["shape_accuracy"] == round(2 / 3, 4)
    assert summary["mean_box_iou"] == 1.0 and summary["image_exact"] == 0.5


def test_eval_detector_refuses_bad_input(tmp_path, capsys):
    out = str(tmp_path / "d.json")
    assert cli_main(["train", "shapes", "eval-detector", "--seeds", "one", "--out", out]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert cli_main(["train", "shapes", "eval-detector", "--detector", str(tmp_path), "--out", out]) == 2
    assert "imgbench train shapes detector" in capsys.readouterr().err


def test_images_from_refuses_a_run_that_is_not_this_models_base_run(tmp_path):
    from imgbench.worlds.shapes.detector_eval import stored
    from imgbench.worlds.shapes.model import ShapesModel

    model = ShapesModel()
    identity = {"method": {"name": "img"}, "task": {"name": "shapes"}, "model": model.identity()}
    (tmp_path / "run.json").write_text(json.dumps({"identity": identity}))
    with pytest.raises(UserError, match="--method base"):
        stored(model, [tmp_path])
    identity["method"]["name"] = "base"
    (tmp_path / "run.json").write_text(json.dumps({"identity": identity}))
    (tmp_path / "generations.jsonl").write_text(json.dumps({"prompt_id": "colors-0001", "seed": 3,
                                                            "image": "images/colors-0001/3.png"}) + "\n")
    assert stored(model, [tmp_path]) == {("test", "colors-0001", 3): tmp_path / "images/colors-0001/3.png"}
