"""shapes-llava: one-error training examples whose targets are valid fixes, resumable training, MLLM API."""

from __future__ import annotations

import numpy as np
import pytest

from imgbench.cli import main as cli_main
from imgbench.errors import UserError
from imgbench.worlds.shapes import edits, llava
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.llava import ShapesLlava
from imgbench.worlds.shapes.llava_data import QUESTION, caption_of, corrupt
from imgbench.worlds.shapes.llava_train import LlavaTrainConfig, LlavaTrainer
from imgbench.worlds.shapes.render import render
from imgbench.worlds.shapes.train_unet import train_rows

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def test_training_targets_are_valid_fixes_of_the_checker_diff():
    rows = [r for skill in train_rows() for r in skill]
    rng = np.random.default_rng(0)
    kinds = set()
    for k in range(300):
        _, spec = rows[int(rng.integers(len(rows)))]
        scene, edit = corrupt(spec, rng)
        kinds.add(edit.kind)
        verdict = check(render(scene, k), spec)
        detected = [(d["color"], d["shape"]) for d in verdict["detected"]]
        position_ok = verdict["aspects"]["position"] is not False
        assert edits.is_valid_fix(edits.parse(edit.text()), detected, spec, position_ok)
        assert (edit.kind == "none") == verdict["correct"]
    assert kinds == {"none", "add", "remove", "recolor", "reshape", "move"}


def test_caption_of_groups_counts():
    objects = [{"shape": "circle", "color": "red"}, {"shape": "circle", "color": "red"},
               {"shape": "square", "color": "blue"}]
    assert caption_of(objects) == "two red circles and a blue square"


def test_llava_training_resumes_exactly(tmp_path):
    import torch

    config = LlavaTrainConfig(batch=4, warmup=1, vision=TINY, text={**TINY, "num_key_value_heads": 2})
    straight = LlavaTrainer(config, tmp_path / "a")
    straight.run(3)
    LlavaTrainer(config, tmp_path / "b").run(1)
    resumed = LlavaTrainer(config, tmp_path / "b")
    resumed.run(3)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mllm_contract_on_tiny_weights(tmp_path):
    out = tmp_path / "out"
    assert cli_main(["train", "shapes", "llava", "--workdir", str(tmp_path / "w"), "--tiny", "--steps", "1",
                     "--batch", "4", "--export", str(out)]) == 0
    mllm = ShapesLlava(model_path=str(out))
    image = render({"objects": [{"shape": "circle", "color": "red", "count": 1}], "relation": None}, 0)
    question = QUESTION.format(prompt="a red circle")
    (states,) = mllm.hidden_states([image], [question])
    prefix = llava.prefix_ids(llava.build_tokenizer(), question)
    assert tuple(states.shape) == (len(prefix), mllm.hidden_size)
    answers = mllm.answer([image, image], [question, question], max_new_tokens=4)
    assert len(answers) == 2 and answers[0] == answers[1] and isinstance(answers[0], str)
    assert len(mllm.identity()["weights_sha256"]) == 64


def test_missing_llava_weights_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="imgbench train shapes llava"):
        ShapesLlava(model_path=str(tmp_path))


def test_instruction_accuracy_study_runs_and_scores_the_majority_baseline(tmp_path):
    from shapes_helpers import tiny_snapshot

    from imgbench.worlds.shapes.llava_eval import evaluate, instruction_accuracy, majority_instruction
    from imgbench.worlds.shapes.model import ShapesModel

    majority = majority_instruction(n=200)
    assert edits.parse(majority) is not None and majority != edits.NOTHING
    out = tmp_path / "llava"
    assert cli_main(["train", "shapes", "llava", "--workdir", str(tmp_path / "w"), "--tiny", "--steps", "1",
                     "--batch", "4", "--export", str(out)]) == 0
    model = ShapesModel(model_path=str(tiny_snapshot(tmp_path / "unet")), steps=1)
    result = evaluate(model, {"tiny": ShapesLlava(model_path=str(out))}, split="val", seeds=(100, 101))
    assert result["n_misaligned"] == sum(result["n_misaligned_by_seed"].values()) > 0
    for name in ("majority", "tiny"):
        assert 0.0 <= result[name]["all"] <= 1.0 and set(result[name]["by_seed"]) <= {"100", "101"}
    spec = {"objects": [{"shape": "circle", "color": "red", "count": 1}], "relation": None}
    case = {"scene": [], "prompt": type("P", (), {"metadata": {"spec": spec}})(), "position_ok": True}
    assert instruction_accuracy(["add a red circle", "remove the circle"], [case, case]) == 0.5


def test_eval_llava_command_reads_the_weights_it_is_given(tmp_path, caplog):
    from shapes_helpers import tiny_snapshot

    out = tmp_path / "llava"
    assert cli_main(["train", "shapes", "llava", "--workdir", str(tmp_path / "w"), "--tiny", "--steps", "1",
                     "--batch", "4", "--export", str(out)]) == 0
    snapshot = str(tiny_snapshot(tmp_path / "unet"))
    caplog.set_level("INFO", logger="imgbench")
    missing = str(tmp_path / "none")
    assert cli_main(["train", "shapes", "eval-llava", "--weights", snapshot, "--llava", str(out),
                     "--llava-base", missing]) == 0
    assert '"shapes-llava":' in caplog.text and '"shapes-llava-base"' not in caplog.text
    assert cli_main(["train", "shapes", "eval-llava", "--weights", snapshot, "--llava", missing,
                     "--llava-base", missing]) == 2
