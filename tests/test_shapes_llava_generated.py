"""shapes-llava trained on the shapes model's drawings: targets are valid fixes of the checker's diff."""

from __future__ import annotations

import numpy as np
from PIL import Image

from imgbench.cli import main as cli_main
from imgbench.worlds.shapes import edits, grammar
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.llava_generated import build, fixing_instruction, load
from imgbench.worlds.shapes.llava_train import LlavaTrainConfig, LlavaTrainer
from imgbench.worlds.shapes.render import draw, layout, render
from imgbench.worlds.shapes.scorer import ShapesExactScorer

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
    """Draws the caption exactly for seed 0 and nothing for seed 1."""

    def generate(self, requests):
        return [render(r.prompt.metadata["spec"], 0) if r.seed == 0 else Image.new("RGB", (32, 32))
                for r in requests]

    def identity(self):
        return {"fake": True}


def test_build_labels_every_drawing_and_training_mixes_them_in(tmp_path):
    out = tmp_path / "data.npz"
    stats = build(_HalfRightModel(), [0, 1], out, split="val")
    pixels, questions, answers = load(out)
    assert stats["examples"] == len(answers) == pixels.shape[0] == 2 * 96
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


def test_generated_data_is_refused_for_the_caption_model(tmp_path):
    data = tmp_path / "data.npz"
    build(_HalfRightModel(), [0], data, split="val")
    train = ["train", "shapes", "llava", "--workdir", str(tmp_path / "w"), "--tiny", "--steps", "1"]
    assert cli_main(train + ["--base", "--generated", str(data)]) == 2
    assert cli_main(train + ["--generated", str(tmp_path / "missing.npz")]) == 2
