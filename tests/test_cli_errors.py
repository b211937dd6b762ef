"""Every bad input exits 2 with a message saying how to fix it — never a traceback."""

from __future__ import annotations

import pytest

BASE = ("run", "--method", "dummy", "--model", "dummy", "--task", "tiny")
RUN = "run", "--method"


@pytest.mark.parametrize("args, message", [
    ((*RUN, "dummy", "--model", "dummy", "--task", "tinny"), "unknown task 'tinny' — did you mean 'tiny'"),
    ((*RUN, "dumy", "--model", "dummy", "--task", "tiny"), "unknown method 'dumy' — did you mean 'dummy'"),
    (("run", "--method", "dummy", "--model", "dumm", "--task", "tiny"), "unknown model 'dumm' — did you mean 'dummy'"),
    ((*BASE, "--scorer", "dumy"), "unknown scorer 'dumy' — did you mean 'dummy'"),
    ((*BASE, "--seeds", "3-1"), "seed range '3-1' is empty"),
    ((*BASE, "--seeds", "a-b"), "cannot parse seeds"),
    ((*BASE, "--seeds", "1,1"), "repeat a value"),
    ((*BASE, "--limit", "0"), "--limit must be at least 1"),
    ((*BASE, "--batch-size", "0"), "--batch-size must be at least 1"),
    ((*BASE, "--shard", "2/2"), "I must be between 0 and N-1"),
    ((*BASE, "--shard", "x"), "--shard expects I/N"),
    ((*BASE, "--tags", "nosuchtag"), "no tag 'nosuchtag'; its tags are: colors, counting, position"),
    ((*BASE, "--method-arg", "slat=1"), "no parameter 'slat' — did you mean 'salt'"),
    ((*BASE, "--method-arg", "noequals"), "expects key=value"),
    ((*BASE, "--model-arg", "speed=2"), "model 'dummy' has no parameter 'speed'"),
    ((*BASE, "--scorer-arg", "dummy.dealy=1"), "scorer 'dummy' has no parameter 'dealy' — did you mean 'delay'"),
    ((*BASE, "--scorer-arg", "clipscore.x=1"), "--scorer-arg names 'clipscore', which is not among the scorers run"),
    ((*BASE, "--scorer-arg", "delay=1"), "--scorer-arg expects SCORER.KEY=VALUE"),
    (("run", "--method", "dummy", "--task", "tiny", "--prompts", "x.txt"), "either --task or --prompts"),
    (("run", "--method", "dummy", "--model", "dummy"), "no task given"),
    (("show", "run", "nope"), "no run folder or run id 'nope'"),
    (("show", "task", "tinyy"), "did you mean 'tiny'"),
])
def test_bad_input_exits_2_with_a_fix(cli, tmp_path, args, message):
    status, _, stderr = cli(*args, "--output", tmp_path) if args[0] == "run" else cli(*args)
    assert status == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr


def test_missing_prompt_file(cli, tmp_path):
    status, _, stderr = cli("run", "--prompts", tmp_path / "none.txt", "--model", "dummy", "--output", tmp_path)
    assert status == 2 and "does not exist" in stderr


def test_wrong_column_and_empty_prompt(cli, tmp_path):
    (tmp_path / "p.csv").write_text("caption\nhello\n")
    status, _, stderr = cli("run", "--prompts", tmp_path / "p.csv", "--model", "dummy", "--output", tmp_path)
    assert status == 2 and "no column 'text'" in stderr and "--text-column" in stderr
    (tmp_path / "q.csv").write_text("text\nhello\n\"\"\n")
    status, _, stderr = cli("run", "--prompts", tmp_path / "q.csv", "--model", "dummy", "--output", tmp_path)
    assert status == 2 and "empty prompt" in stderr


def test_no_model_and_no_default(cli, tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n")
    status, _, stderr = cli("run", "--prompts", tmp_path / "p.txt", "--output", tmp_path)
    assert status == 2 and "names no default_model; choose one with --model" in stderr


def test_no_scorer_anywhere(cli, tmp_path):
    (tmp_path / "p.txt").write_text("a cat\n")
    status, _, stderr = cli("run", "--prompts", tmp_path / "p.txt", "--model", "dummy", "--output", tmp_path)
    assert status == 2 and "no scorer to run" in stderr


def test_output_parent_is_a_file(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    status, _, stderr = cli(*BASE, "--output", tmp_path / "file" / "results")
    assert status == 2 and "is a file, not a folder" in stderr


def test_malformed_task_yaml(cli, tmp_path):
    (tmp_path / "t.yaml").write_text("task: t\nseeds: [0,\n")
    status, _, stderr = cli("run", "--task", tmp_path / "t.yaml", "--model", "dummy", "--output", tmp_path)
    assert status == 2 and "malformed YAML" in stderr and "t.yaml:" in stderr


def test_bad_flag_is_exit_2(cli):
    with pytest.raises(SystemExit) as info:
        cli("run", "--no-such-flag")
    assert info.value.code == 2


def test_score_run_that_is_not_a_run(cli, tmp_path):
    status, _, stderr = cli("score", "--run", tmp_path, "--scorer", "dummy")
    assert status == 2 and "not an imgbench run folder" in stderr


def test_score_images_folder_without_images(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    status, _, stderr = cli("score", "--images", tmp_path / "imgs", "--task", "tiny", "--output", tmp_path)
    assert status == 2 and "no images found" in stderr


def test_internal_errors_exit_1(cli, tmp_path, monkeypatch):
    from imgbench.testing import DummyMethod

    def broken(self, requests, model):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(DummyMethod, "generate", broken)
    status, _, stderr = cli(*BASE, "--output", tmp_path)
    assert status == 1 and "internal error: ZeroDivisionError: boom" in stderr and "--debug" in stderr
