"""End to end through the CLI with the dummy model, method and scorer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from imgbench.store import RunStore


def _run_dir(out: Path, method: str = "dummy") -> Path:
    (run,) = (out / "runs" / "tiny" / "dummy" / method).iterdir()
    return run


def test_run_writes_the_folder_contract(cli, tmp_path):
    out = tmp_path / "results"
    status, stdout, _ = cli("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--scorer", "dummy",
                            "--output", out)
    assert status == 0, stdout
    run = _run_dir(out)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["run_id"] == run.name and manifest["identity"]["task"]["name"] == "tiny"
    assert manifest["created_by"]["versions"]["imgbench"]
    assert Image.open(run / "images" / "0" / "3.png").size == (64, 64)
    note = json.loads((run / "artefacts" / "0" / "3" / "note.json").read_text())
    assert note == {"prompt": "a red apple on a table", "seed": 3}
    generations = RunStore(run).load_generations()
    assert len(generations) == 24
    metrics = json.loads((run / "metrics.json").read_text())
    (entry,) = metrics["scorers"].values()
    assert metrics["item_set"]["n_items"] == 24 and entry["overall"]["n_prompts"] == 6
    assert set(entry["by_tag"]) == {"colors", "counting", "position"}
    assert "generated 24 image(s); scored dummy 24" in stdout


def test_rerun_of_a_finished_run_does_nothing(cli, tmp_path):
    args = ("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--output", tmp_path)
    cli(*args)
    before = (_run_dir(tmp_path) / "generations.jsonl").read_bytes()
    status, stdout, _ = cli(*args)
    assert status == 0 and "generated 0 image(s); scored dummy 0" in stdout
    assert (_run_dir(tmp_path) / "generations.jsonl").read_bytes() == before


def test_seeds_limit_and_tags_extend_the_same_run(cli, tmp_path):
    cli("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--seeds", "0-1", "--tags", "Colors",
        "--output", tmp_path)
    run = _run_dir(tmp_path)
    assert len(RunStore(run).load_generations()) == 4
    status, stdout, _ = cli("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--seeds", "0-2",
                            "--limit", "3", "--output", tmp_path)
    assert status == 0 and _run_dir(tmp_path) == run  # seeds/limit/tags are not part of the identity
    assert "generated 5 image(s)" in stdout  # 3 prompts x 3 seeds, 4 of them already there
    assert json.loads((run / "metrics.json").read_text())["item_set"]["n_items"] == 9


def test_offset_walks_a_task_in_chunks_that_extend_one_run(cli, tmp_path):
    """Chunks of prompts with seeds of their own (how the shapes pairs get a noise block per chunk)."""
    for offset, seeds in ((0, "10-11"), (2, "20-21"), (4, "30-31")):
        status, _, _ = cli("generate", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--offset", offset,
                           "--limit", "2", "--seeds", seeds, "--output", tmp_path)
        assert status == 0
    keys = sorted(RunStore(_run_dir(tmp_path)).load_generations())
    assert keys == sorted([(p, s) for p, s0 in (("0", 10), ("1", 10), ("2", 20), ("3", 20), ("4", 30), ("5", 30))
                           for s in (s0, s0 + 1)])
    status, _, stderr = cli("generate", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--offset", "6",
                            "--output", tmp_path)
    assert status == 2 and "skips all 6" in stderr


def test_batch_size_does_not_change_images(cli, tmp_path):
    for batch in (1, 5):
        cli("generate", "--method", "base", "--model", "dummy", "--task", "tiny", "--batch-size", batch,
            "--output", tmp_path / str(batch))
    digests = [{k: r["sha256"] for k, r in RunStore(_run_dir(tmp_path / str(b), "base")).load_generations().items()}
               for b in (1, 5)]
    assert digests[0] == digests[1] and len(digests[0]) == 24


def test_scorer_args_reach_the_scorer(cli, tmp_path):
    status, stdout, _ = cli("run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--seeds", "0",
                            "--scorer", "dummy", "--scorer-arg", "dummy.delay=0.001", "--output", tmp_path)
    assert status == 0 and "scored dummy 6" in stdout


def test_batch_size_defaults_to_the_model_preference_and_is_recorded(cli, tmp_path):
    cli("generate", "--method", "base", "--model", "dummy", "--task", "tiny", "--seeds", "0", "--output", tmp_path)
    records = RunStore(_run_dir(tmp_path, "base")).load_generations()
    assert {r["batch_size"] for r in records.values()} == {1}


def test_method_args_change_the_run_identity(cli, tmp_path):
    cli("generate", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--limit", "1", "--output", tmp_path)
    cli("generate", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--limit", "1", "--output", tmp_path,
        "--method-arg", "salt=x")
    assert len(list((tmp_path / "runs" / "tiny" / "dummy" / "dummy").iterdir())) == 2


def test_generate_then_score_run_then_show(cli, tmp_path):
    cli("generate", "--method", "base", "--model", "dummy", "--task", "tiny", "--seeds", "0", "--output", tmp_path)
    run = _run_dir(tmp_path, "base")
    assert not (run / "metrics.json").exists()
    status, stdout, _ = cli("score", "--run", run, "--scorer", "dummy")
    assert status == 0 and "scored dummy 6" in stdout
    assert json.loads((run / "metrics.json").read_text())["item_set"]["n_items"] == 6
    status, stdout, _ = cli("show", "run", run.name, "--output", tmp_path)
    assert status == 0 and run.name in stdout and "images: 6" in stdout


def test_score_external_images_with_a_prompt_file(cli, tmp_path):
    (tmp_path / "prompts.txt").write_text("a red cube\na blue ball\n")
    for prompt_id in ("0", "1"):
        (tmp_path / "imgs" / prompt_id).mkdir(parents=True)
        Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "imgs" / prompt_id / "0.png")
    status, stdout, _ = cli("score", "--images", tmp_path / "imgs", "--prompts", tmp_path / "prompts.txt",
                            "--scorer", "dummy", "--output", tmp_path / "out")
    assert status == 0, stdout
    (metrics,) = (tmp_path / "out" / "runs" / "prompts-prompts" / "external").glob("*/*/metrics.json")
    assert json.loads(metrics.read_text())["item_set"]["n_items"] == 2


def test_own_prompt_file_and_task_yaml_path(cli, tmp_path):
    (tmp_path / "mine.csv").write_text("caption\na green tree\n")
    status, stdout, _ = cli("run", "--prompts", tmp_path / "mine.csv", "--text-column", "caption", "--model", "dummy",
                            "--scorer", "dummy", "--seeds", "0", "--output", tmp_path)
    assert status == 0 and "generated 1 image(s)" in stdout
    (tmp_path / "t.yaml").write_text("task: mytask\nprompts: {path: mine.csv, text_column: caption}\n"
                                     "seeds: [0]\nheight: 32\nwidth: 32\nscorers: [dummy]\ndefault_model: dummy\n")
    status, stdout, _ = cli("run", "--task", tmp_path / "t.yaml", "--output", tmp_path)
    assert status == 0 and "mytask" in stdout


def test_ls_and_validate(cli):
    status, stdout, _ = cli("ls", "tasks")
    assert status == 0 and "tiny" in stdout
    status, stdout, _ = cli("validate", "--task", "tiny", "--task", "shapes")
    assert status == 0 and "validate: ok" in stdout


def test_validate_fails_when_it_could_not_check_a_suite(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "empty-cache"))
    status, stdout, _ = cli("validate", "--task", "tiny", "--task", "tifa")
    assert status == 1 and "validate: ok" not in stdout
    assert "unchecked: task 'tifa'" in " ".join(stdout.split()) and "could not be checked" in stdout


def test_validate_notes_unpinned_model_revisions(cli):
    status, stdout, _ = cli("validate", "--task", "tiny")
    assert status == 0 and "model 'sdxl': revision is unpinned; the served commit is recorded per run." in stdout


def test_ls_does_not_import_torch():
    code = ("import sys; from imgbench.cli import main; main(['ls']); "
            "assert 'torch' not in sys.modules, 'ls imported torch'; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_python_dash_m_works(cli_process):
    out = cli_process("--version")
    assert out.returncode == 0 and out.stdout.startswith("imgbench ")
