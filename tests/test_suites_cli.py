"""The suites through the command line: offline `run` exits 2 fast, `show task`, `ls` without torch, validate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from suites_support import PROXY_VARS, REPO, closed_port, shared_suites

from imgbench.cli import main

GVIZ = "https://docs.google.com/spreadsheets/d/1y7nAbmR4FREi6npB1u-Bo3GFdwdOPYJc617rBOxIRHY/gviz/tq?tqx=out:csv"


def _clean_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IMGBENCH_DATA_DIR", "IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", *PROXY_VARS)}
    env["IMGBENCH_CACHE"] = str(tmp_path / "cache")
    return env


def _run_drawbench(env, tmp_path):
    command = [sys.executable, "-m", "imgbench", "run", "--task", "drawbench", "--model", "dummy", "--method",
               "dummy", "--scorer", "dummy", "--output", str(tmp_path / "results")]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    return done, time.perf_counter() - start


@pytest.mark.parametrize("how", ["IMGBENCH_OFFLINE", "closed proxy"])
def test_run_without_a_copy_exits_2_with_url_and_path_within_5s(tmp_path, how):
    env = _clean_env(tmp_path)
    if how == "IMGBENCH_OFFLINE":
        env["IMGBENCH_OFFLINE"] = "1"
    else:  # downloads allowed, but every one is routed to a loopback port nobody listens on
        proxy = f"http://127.0.0.1:{closed_port()}"
        env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy)
    done, seconds = _run_drawbench(env, tmp_path)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert seconds < 5, f"took {seconds:.1f} s"
    assert GVIZ in message
    assert str(tmp_path / "cache" / "suites" / "drawbench" / "DrawBench Prompts.csv") in message
    assert ("offline" if how == "IMGBENCH_OFFLINE" else "download failed") in message


def test_run_with_data_dir_flag(tmp_path):
    env = _clean_env(tmp_path)
    env["IMGBENCH_OFFLINE"] = "1"
    command = [sys.executable, "-m", "imgbench", "run", "--task", "drawbench-counting", "--data-dir",
               str(shared_suites()), "--model", "dummy", "--method", "dummy", "--scorer", "dummy", "--seeds", "0",
               "--limit", "2", "--output", str(tmp_path / "results")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    run_json = next((tmp_path / "results").rglob("run.json"))
    manifest = json.loads(run_json.read_text())
    assert manifest["task"] == "drawbench-counting"
    invocation = json.loads((run_json.parent / "invocations.jsonl").read_text().splitlines()[0])
    assert invocation["task_data"].endswith("drawbench (data dir)")


def test_show_task_prints_categories_with_counts(monkeypatch, capsys):
    monkeypatch.delenv("IMGBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["show", "task", "drawbench", "--data-dir", str(shared_suites())]) == 0
    out = capsys.readouterr().out
    assert "prompts: 200" in out
    for tag, count in (("gary-marcus-et-al", 10), ("reddit", 38), ("rare-words", 7), ("colors", 25)):
        assert any(tag in line and line.rstrip(" │|").endswith(str(count)) for line in out.splitlines()), tag
    assert "IMGBENCH_DATA_DIR" not in os.environ  # --data-dir does not leak past the command


def test_ls_tasks_shows_suites_without_importing_torch_or_reading_data(tmp_path):
    env = _clean_env(tmp_path)
    env["IMGBENCH_DATA_DIR"] = str(tmp_path / "nowhere")  # would be an error if anything read data
    code = ("import sys; from imgbench.cli import main; rc = main(['ls', 'tasks']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "COLUMNS": "250"}, capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    for name in ("drawbench", "partiprompts", "geneval", "t2i-compbench", "hpdv2", "pickapic-test", "genai-bench",
                 "genai-bench-527", "tifa", "dpg-bench", "imagereward-bench", "drawbench-counting"):
        assert name in done.stdout


def test_validate_notes_unpinned_suites_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "300")
    main(["validate", "--task", "genai-bench", "--task", "drawbench", "--data-dir", str(shared_suites())])
    out = " ".join(capsys.readouterr().out.split())
    assert "task 'genai-bench': no reference content checksum pinned" in out
    assert "huggingface.co/datasets/BaiqiL/GenAI-Bench-1600/resolve/main/genai_image.json" in out
    assert "drawbench': declares" not in out  # declared size and tag counts match the data


def test_validate_reports_a_changed_copy_as_a_problem_not_a_note(tmp_path, monkeypatch, capsys):
    """A checksum mismatch is an error (exit 2), even though its message mentions downloading a fresh copy."""
    from suites_support import copy_suite

    folder = copy_suite("drawbench", tmp_path / "data")
    path = folder / "DrawBench Prompts.csv"
    path.write_bytes(path.read_bytes().replace(b"A red colored car.", b"A blue colored car.", 1))
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["validate", "--task", "drawbench", "--task", "tifa", "--data-dir", str(tmp_path / "data")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "problem: task 'drawbench': the prompts read from" in out and "pins b09cd154" in out
    assert "unchecked: task 'tifa': no local copy and downloads are off" in out  # absent data: not a problem
    assert "validate: 1 problem(s)" in out


def test_report_on_a_suite_run_reads_texts_with_data_dir_and_still_works_without(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("IMGBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    results, suites = str(tmp_path / "results"), str(shared_suites())
    assert main(["run", "--task", "drawbench-counting", "--data-dir", suites, "--model", "dummy", "--method", "dummy",
                 "--scorer", "dummy", "--seeds", "0", "--limit", "2", "--output", results]) == 0
    assert main(["report", "--output", results, "--data-dir", suites]) == 0
    page = (tmp_path / "results" / "report" / "index.html").read_text()
    assert "<h3>35: One car on the street.</h3>" in page
    caplog.clear()
    # without the suite's data the numbers are still reported; the page shows ids and the log says why
    assert main(["report", "--output", results]) == 0
    page = (tmp_path / "results" / "report" / "index.html").read_text()
    assert "<h3>35: (prompt 35)</h3>" in page
    assert "prompt ids without their text" in caplog.text and "drawbench/DrawBench Prompts.csv" in caplog.text


def test_validate_every_task_against_the_shared_copies_is_clean(tmp_path, monkeypatch, capsys):
    """Declared sizes and tag counts match for every suite present; a partial copy is unchecked, so exit 1."""
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["validate", "--data-dir", str(shared_suites())]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "problem:" not in out and "validate: ok" not in out
    assert "unchecked: task 'hpdv2-3400': the local copy" in out and "lacks 'drawbench.json'" in out
    assert "validate: no problem found, but" in out and "thing(s) could not be checked" in out
