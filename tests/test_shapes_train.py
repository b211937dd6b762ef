"""The shapes trainer: bit-identical first steps for a seed, resume == uninterrupted, CLI train/eval/export."""

from __future__ import annotations

import json

import pytest
from shapes_helpers import tiny_config

from imgbench.cli import main as cli_main
from imgbench.errors import UserError
from imgbench.worlds.shapes.train_unet import UNetTrainer, make_batch, train_rows


def _weights(trainer):
    return {**{f"u.{k}": v for k, v in trainer.unet.state_dict().items()},
            **{f"t.{k}": v for k, v in trainer.text.state_dict().items()},
            **{f"e.{k}": v for k, v in trainer.ema_unet.state_dict().items()}}


def _same(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_first_steps_are_bit_identical_for_a_seed(tmp_path):
    runs = []
    for name in ("a", "b"):
        trainer = UNetTrainer(tiny_config(), tmp_path / name)
        losses = [trainer.train_step() for _ in range(3)]
        runs.append((losses, _weights(trainer)))
    assert runs[0][0] == runs[1][0] and _same(runs[0][1], runs[1][1])
    other = UNetTrainer(tiny_config(seed=1), tmp_path / "c")
    assert [other.train_step() for _ in range(3)] != runs[0][0]


def test_resume_equals_uninterrupted(tmp_path):
    straight = UNetTrainer(tiny_config(), tmp_path / "straight")
    straight.run(4)
    first = UNetTrainer(tiny_config(), tmp_path / "resumed")
    first.run(2)
    second = UNetTrainer(tiny_config(), tmp_path / "resumed")
    assert second.step == 2
    second.run(4)
    assert _same(_weights(straight), _weights(second))


def test_resume_with_other_config_is_refused(tmp_path):
    UNetTrainer(tiny_config(), tmp_path).run(1)
    with pytest.raises(UserError, match="resume with the same options"):
        UNetTrainer(tiny_config(lr=5e-4), tmp_path)


def test_batches_depend_only_on_seed_and_step():
    rows = train_rows()
    a, b = make_batch(rows, 0, 5, 6, 0.5), make_batch(rows, 0, 5, 6, 0.5)
    assert a[0] == b[0] and (a[1] == b[1]).all()
    assert make_batch(rows, 0, 6, 6, 0.5)[0] != a[0]


def test_cli_trains_evaluates_and_exports(tmp_path):
    work, out = tmp_path / "work", tmp_path / "weights"
    assert cli_main(["train", "shapes", "unet", "--workdir", str(work), "--tiny", "--steps", "2", "--batch", "4",
                     "--snapshot-every", "2"]) == 0
    assert (work / "checkpoint.pt").exists() and (work / "snapshots" / "step_000002").is_dir()
    assert cli_main(["train", "shapes", "eval", "--workdir", str(work), "--guidance", "1", "--steps", "2",
                     "--sample-steps", "1"]) == 0
    result = json.loads((work / "eval.jsonl").read_text().splitlines()[0])
    assert result["n"] == 96 and set(result["by_skill"]) >= {"counting", "position"}
    out.mkdir()
    assert cli_main(["train", "shapes", "export", "--workdir", str(work), "--step", "2", "--guidance", "1.5",
                     "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["sampling"]["guidance"] == 1.5 and manifest["val_metrics"]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert cli_main(["train", "shapes", "export", "--workdir", str(work), "--step", "7", "--guidance", "1",
                     "--out", str(out)]) == 2


def test_warm_start_from_exported_weights_continues_the_step_count(tmp_path):
    first = UNetTrainer(tiny_config(), tmp_path / "first")
    first.run(2)
    snapshot = first.snapshot()
    warm = UNetTrainer(tiny_config(init_from=str(snapshot)), tmp_path / "warm")
    assert warm.step == 2
    import torch

    assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(warm.ema_unet.state_dict().values(),
                                                              first.ema_unet.state_dict().values(), strict=True))
    warm.run(3)
    assert warm.step == 3
    with pytest.raises(UserError, match="train_state.json"):
        UNetTrainer(tiny_config(init_from=str(tmp_path)), tmp_path / "bad")


def test_branch_from_a_checkpoint_continues_that_run_exactly(tmp_path):
    straight = UNetTrainer(tiny_config(), tmp_path / "straight")
    straight.run(4)
    first = UNetTrainer(tiny_config(), tmp_path / "first")
    first.run(2)
    branch = UNetTrainer(tiny_config(init_from=str(tmp_path / "first")), tmp_path / "branch")
    assert branch.step == 2 and _same(_weights(first), _weights(branch))
    branch.run(4)
    assert _same(_weights(straight), _weights(branch))
    with pytest.raises(UserError, match="seed"):
        UNetTrainer(tiny_config(seed=3, init_from=str(tmp_path / "first")), tmp_path / "other")


def test_cosine_anneal_takes_the_rate_to_zero_after_its_start(tmp_path):
    trainer = UNetTrainer(tiny_config(lr=1e-3, warmup=1, anneal_from=2, anneal_steps=4), tmp_path)
    rates = []
    for step in range(8):
        trainer.step = step
        trainer.set_lr()
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    assert rates[:3] == [1e-3] * 3 and rates[4] == pytest.approx(5e-4) and rates[6:] == [0.0, 0.0]
    assert rates[2] > rates[3] > rates[4] > rates[5] > rates[6]


def test_cli_branches_a_run_and_anneals_it(tmp_path):
    import torch

    first, branch = tmp_path / "first", tmp_path / "branch"
    tiny = ["--tiny", "--batch", "4", "--snapshot-every", "0"]
    assert cli_main(["train", "shapes", "unet", "--workdir", str(first), "--steps", "2", *tiny]) == 0
    assert cli_main(["train", "shapes", "unet", "--workdir", str(branch), "--steps", "4", *tiny,
                     "--init-from", str(first), "--anneal-from", "2", "--anneal-steps", "2"]) == 0
    state = torch.load(branch / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and state["config"]["init_from"] == str(first.resolve())
    assert (state["config"]["anneal_from"], state["config"]["anneal_steps"]) == (2, 2)
    # the last step (3) ran at warm-up 4/200 of 1e-3, halfway down the cosine
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 4 / 200 * 0.5)


@pytest.mark.parametrize("command, bad", [
    ("unet", ["--batch", "0"]), ("unet", ["--threads", "0"]), ("unet", ["--seed", "-1"]),
    ("unet", ["--anneal-steps", "-5"]), ("unet", ["--minutes", "0"]), ("unet", ["--lr", "-1e-3"]),
    ("unet", ["--snapshot-every", "-1"]), ("ip-adapter", ["--anneal-from", "-1"]), ("clip", ["--steps", "x"]),
])
def test_training_commands_refuse_out_of_range_numbers_with_exit_2(tmp_path, capsys, command, bad):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "shapes", command, "--workdir", str(tmp_path / "w"), *bad])
    assert exit_info.value.code == 2
    assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("command, bad", [("eval", ["--workdir", "W", "--sample-steps", "0"]),
                                          ("eval-ip", ["--limit", "0"]), ("eval-llava", ["--threads", "0"])])
def test_evaluation_commands_refuse_out_of_range_numbers_with_exit_2(capsys, command, bad):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "shapes", command, *bad])
    assert exit_info.value.code == 2
    assert bad[-2] in capsys.readouterr().err
