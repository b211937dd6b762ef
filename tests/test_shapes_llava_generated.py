"""shapes-llava trained on the shapes model's drawings: targets are valid fixes of the checker's diff."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from imgbench.cli import main as cli_main
from imgbench.errors import UserError
from imgbench.worlds.shapes import edits, grammar
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.llava_generated import build, data_of, fixing_instruction, load
from imgbench.worlds.shapes.llava_train import LlavaTrainConfig, LlavaTrainer
from imgbench.worlds.shapes.render import draw, layout, render
from imgbench.worlds.shapes.scorer import ShapesExactScorer
from imgbench.worlds.shapes.seeds import SPLIT_VERSION

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def _spec(skill, objects, relation=None):
    return grammar.spec_of(skill, [{"shape": s, "color": c, "count": n} for s, c, n in objects], relation)


def test_fix_order_prefers_the_smallest_natural_edit():
    spec = _spec("color-attr", [("circle", "red", 1), ("square", "blue", 1)])
    assert fixing_instruction([("red", "circle"), ("blue", "square")], spec, True) == edits.NOTHING
    assert fixing_instruction([("red", "circle"), ("green", "square")], spec, True) == "make the green square blue"
    reshaped = fixing_instruction([("red", "circle"), ("blue", "triangle")], spec, True)
    assert reshaped == "make the blue triangle a square"
    assert fixing_instruction([("red", "circle")], spec, True) == "add a blue square"
    position = _spec("position", [("circle", None, 1), ("square", None, 1)], {"a": 0, "rel": "left of", "b": 1})
    assert fixing_instruction([("red", "circle"), ("red", "square")], position, False) == \
        "put the circle left of the square"
    counting = _spec("counting", [("triangle", None, 2)])
    assert fixing_instruction([("red", "triangle")] * 3, counting, True) == "remove the red triangle"


def test_every_answer_on_random_scenes_is_a_valid_fix():
    rows = [(c, s) for rows in grammar.all_captions().values() for c, s, _ in rows]
    rng = np.random.default_rng(0)
    answered = 0
    for _ in range(400):
        spec = rows[int(rng.integers(len(rows)))][1]
        n = int(rng.integers(0, 5))
        scene_spec = grammar.spec_of("scene", [{"shape": grammar.SHAPES[int(rng.integers(3))],
                                                "color": grammar.COLORS[int(rng.integers(4))], "count": 1}
                                               for _ in range(n)])
        verdict = check(Image.fromarray(draw(layout(scene_spec, rng))), spec)
        scene = [(d["color"], d["shape"]) for d in verdict["detected"]]
        position_ok = verdict["aspects"]["position"] is not False
        answer = fixing_instruction(scene, spec, position_ok)
        if answer is not None:
            answered += 1
            assert edits.is_valid_fix(edits.parse(answer), scene, spec, position_ok), (spec, scene, answer)
    assert answered >= 390


class _HalfRightModel:
    """Draws the caption exactly for seeds below 1,096 (the first pass over the 96 val captions), else nothing."""

    def generate(self, requests):
        return [render(r.prompt.metadata["spec"], 0) if r.seed < 1096 else Image.new("RGB", (32, 32))
                for r in requests]

    def identity(self):
        return {"fake": True}


def test_build_labels_every_drawing_and_training_mixes_them_in(tmp_path):
    out = tmp_path / "data.npz"
    stats = build(_HalfRightModel(), out, per_caption=2, first_seed=1000, split="val")
    pixels, questions, answers = load(out)
    assert stats["examples"] == len(answers) == pixels.shape[0] == 2 * 96
    assert stats["data"]["seeds"] == [[1000, 1191]] and data_of(out) == stats["data"]  # a seed per drawing
    assert stats["checker"] == {"name": "shapes-exact", "version": ShapesExactScorer.version}  # the labels' rule
    assert answers[:96] == [edits.NOTHING] * 96
    assert all(a.startswith("add a ") for a in answers[96:])
    config = LlavaTrainConfig(batch=16, warmup=1, vision=TINY, text={**TINY, "num_key_value_heads": 2},
                              generated=str(out), generated_share=1.0)
    trainer = LlavaTrainer(config, tmp_path / "w")
    labels = trainer.batch(0)["labels"]
    said = [trainer.tokenizer.decode([t for t in row.tolist() if t != -100], skip_special_tokens=True)
            for row in labels]
    assert len(said) == 16 and set(said) <= set(answers) and edits.NOTHING in said
    manifest = json.loads((trainer.export(tmp_path / "llava") / "manifest.json").read_text())
    assert manifest["data"]["seeds"] == [[1000, 1191]] and manifest["data"]["split_version"] == SPLIT_VERSION


def test_drawings_for_a_part_never_use_test_or_val_seeds(tmp_path):
    for first in (0, 100, 99_999):
        with pytest.raises(UserError, match="outside the range for method parts"):
            build(_HalfRightModel(), tmp_path / "data.npz", per_caption=1, first_seed=first, split="val")
    assert not (tmp_path / "data.npz").exists()


def test_drawings_without_a_seed_record_are_refused_before_training(tmp_path):
    out = tmp_path / "data.npz"
    build(_HalfRightModel(), out, per_caption=1, split="val")
    out.with_suffix(".json").unlink()  # as an .npz from before the seed protocol
    config = LlavaTrainConfig(batch=4, vision=TINY, text={**TINY, "num_key_value_heads": 2}, generated=str(out))
    with pytest.raises(UserError, match="no record of the seeds"):
        LlavaTrainer(config, tmp_path / "w")


def test_generated_data_is_refused_for_the_caption_model(tmp_path):
    data = tmp_path / "data.npz"
    build(_HalfRightModel(), data, per_caption=1, split="val")
    train = ["train", "shapes", "llava", "--workdir", str(tmp_path / "w"), "--tiny", "--steps", "1"]
    assert cli_main(train + ["--base", "--generated", str(data)]) == 2
    assert cli_main(train + ["--generated", str(tmp_path / "missing.npz")]) == 2
