"""Store behaviour of issue #24 that the fixture-driven tests do not isolate: file modes, temp files of live
processes, another shard's damaged file, scoring damaged images, and damaged runs among healthy ones."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from hardening_support import cli, records, run_dir

from imgbench.audit import row_checksum
from imgbench.util.hashing import sha256_file
from imgbench.util.io import HOST, atomic_write_bytes, remove_stale_temp_files

DUMMY = ("--model", "dummy", "--method", "dummy", "--task", "tiny", "--scorer", "dummy")


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_the_users_umask(tmp_path, capsys, mask):
    old = os.umask(mask)
    try:
        assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)[0] == 0
    finally:
        os.umask(old)
    run = run_dir(tmp_path)
    for path in (run / "run.json", run / "metrics.json", run / "images" / "0" / "0.png", run / "generations.jsonl",
                 run / "invocations.jsonl", next((run / "scores").glob("*.json"))):
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def test_only_dead_local_processes_temp_files_are_removed(tmp_path):
    from hardening_support import dead_pid

    dead = tmp_path / f".a.png.{HOST}-{dead_pid()}.x1.tmp"
    live = tmp_path / f".b.png.{HOST}-{os.getpid()}.x2.tmp"
    remote = tmp_path / f".c.png.0badc0de-{dead_pid()}.x3.tmp"
    for path in (dead, live, remote):
        path.write_bytes(b"partial")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert live.exists() and remote.exists()


def test_a_failed_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "blocked"
    target.mkdir()  # os.replace onto a folder fails after the temp file was written
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert not list(tmp_path.glob(".*.tmp"))


def test_score_rows_carry_a_checksum_of_content_scorer_and_image(tmp_path, capsys):
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)[0] == 0
    (scores,) = (run_dir(tmp_path) / "scores").glob("*.jsonl")
    key = scores.stem
    for row in records(scores):
        assert row["checksum"] == row_checksum(row, key)
        assert row["checksum"] != row_checksum(row, key.replace("dummy@", "other@"))  # moved rows are caught
        assert row["checksum"] != row_checksum({**row, "image_sha256": "0" * 64}, key)


def test_score_run_never_writes_a_row_for_an_image_that_does_not_match(tmp_path, capsys, caplog):
    """`score --run` does not regenerate: swapped images are reported and left unscored, never mis-scored."""
    assert cli(capsys, "generate", "--model", "dummy", "--method", "dummy", "--task", "tiny", "--seeds", "0-1",
               "--output", tmp_path)[0] == 0
    run = run_dir(tmp_path)
    a, b = run / "images" / "0" / "0.png", run / "images" / "1" / "0.png"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    status, out, _ = cli(capsys, "score", "--run", run, "--scorer", "dummy")
    assert status == 0 and "scored dummy 10" in out
    assert "does not match its recorded sha256" in caplog.text
    (scores,) = (run / "scores").glob("*.jsonl")
    digests = {(r["prompt_id"], r["seed"]): r["image_sha256"] for r in records(scores)}
    assert ("0", 0) not in digests and ("1", 0) not in digests
    for (prompt, seed), digest in digests.items():
        assert digest == sha256_file(run / "images" / prompt / f"{seed}.png")
    assert cli(capsys, "run", "--model", "dummy", "--method", "dummy", "--task", "tiny", "--seeds", "0-1",
               "--scorer", "dummy", "--output", tmp_path)[0] == 0
    assert len(records(scores)) == 12  # the run regenerated both and scored them once


def _sharded(tmp_path: Path, capsys) -> Path:
    for shard in ("0/2", "1/2"):
        assert cli(capsys, "run", *DUMMY, "--shard", shard, "--output", tmp_path)[0] == 0
    return run_dir(tmp_path)


def test_another_shards_damaged_file_is_healed_when_it_is_free(tmp_path, capsys, caplog):
    run = _sharded(tmp_path, capsys)
    other = run / "generations.shard-1-of-2.jsonl"
    lines = other.read_bytes().splitlines(keepends=True)
    other.write_bytes(b"".join([*lines, lines[0]]))  # a duplicate in shard 1's file
    status, out, _ = cli(capsys, "run", *DUMMY, "--output", tmp_path)  # unsharded: owns every item
    assert status == 0 and "generated 1 image(s)" in out
    assert "generation records for one item" in caplog.text
    keys = [(r["prompt_id"], r["seed"]) for f in run.glob("generations*.jsonl") for r in records(f)]
    assert len(keys) == len(set(keys)) == 24


def test_a_damaged_record_in_a_busy_shard_file_waits_for_its_writer(tmp_path, capsys, caplog):
    run = _sharded(tmp_path, capsys)
    other = run / "generations.shard-1-of-2.jsonl"
    first = json.loads(other.read_bytes().splitlines()[0])
    other.write_bytes(other.read_bytes() + json.dumps(first).encode() + b"\n")
    with open(run / ".locks" / "generations.shard-1-of-2.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # shard 1's writer is running
        status, out, _ = cli(capsys, "run", *DUMMY, "--output", tmp_path)
        assert status == 0 and "generated 0 image(s)" in out  # not redone: that would make it twice
        assert "in a file another imgbench process is writing" in caplog.text
    status, out, _ = cli(capsys, "run", *DUMMY, "--output", tmp_path)
    assert status == 0 and "generated 1 image(s)" in out


def test_compare_report_and_show_skip_and_name_a_damaged_run(tmp_path, capsys, caplog):
    for method in ("base", "dummy"):
        assert cli(capsys, "run", "--model", "dummy", "--method", method, "--task", "tiny", "--seeds", "0-1",
                   "--scorer", "dummy", "--output", tmp_path)[0] == 0
    assert cli(capsys, "run", "--model", "dummy", "--method", "dummy", "--method-arg", "salt=x", "--task", "tiny",
               "--seeds", "0-1", "--scorer", "dummy", "--output", tmp_path)[0] == 0
    damaged = next(p for p in (tmp_path / "runs" / "tiny" / "dummy" / "dummy").iterdir()
                   if json.loads((p / "run.json").read_text())["identity"]["method"]["params"]["salt"] == "x")
    (damaged / "run.json").write_text("{")
    status, out, _ = cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against", "dummy/dummy",
                         "--output", tmp_path)
    assert status == 0 and "dummy/dummy" in out
    assert f"run folder {damaged} is damaged: run.json is not valid JSON" in caplog.text
    caplog.clear()
    status, out, _ = cli(capsys, "report", "--output", tmp_path, "--out", tmp_path / "report")
    assert status == 0 and "dummy/base" in out and str(damaged) in caplog.text
    status, _, err = cli(capsys, "show", "run", damaged.name, "--output", tmp_path)
    assert status == 2 and "is damaged: run.json is not valid JSON" in err and "move the folder out" in err
    status, _, err = cli(capsys, "score", "--run", damaged, "--scorer", "dummy")
    assert status == 2 and "is damaged" in err


def test_show_run_reports_a_damaged_metrics_file(tmp_path, capsys):
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)[0] == 0
    run = run_dir(tmp_path)
    for content in ("{", "[]", '{"scorers": {"x": {"overall": {}}}, "item_set": {"n_items": 6}}'):
        (run / "metrics.json").write_text(content)
        status, out, err = cli(capsys, "show", "run", run)
        assert status == 0 and "metrics.json is damaged" in " ".join(out.split()), err


def test_a_refused_run_request_creates_nothing(tmp_path, capsys):
    """Refusals after the model is built (an unknown scorer) still come before the first write."""
    output = tmp_path / "results"
    status, _, err = cli(capsys, "run", *DUMMY, "--scorer", "nope", "--output", output)
    assert status == 2 and "unknown scorer 'nope'" in err and not output.exists()
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", output)[0] == 0
    invocations = run_dir(output) / "invocations.jsonl"
    before = invocations.read_bytes()
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--tags", "nosuch", "--output", output)[0] == 2
    assert invocations.read_bytes() == before


def test_a_run_folder_with_no_content_is_a_fresh_start(tmp_path, capsys):
    """A process killed between creating the folder and writing run.json left an empty folder: not damage."""
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)[0] == 0
    run = run_dir(tmp_path)
    shutil.rmtree(run)
    (run / ".locks").mkdir(parents=True)
    status, out, _ = cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)
    assert status == 0 and "generated 6 image(s)" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_an_unwritable_output_folder_is_refused_before_loading(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    status, _, err = cli(capsys, "run", *DUMMY, "--output", locked / "results")
    assert status == 2 and "is not writable (permission denied)" in err


def test_an_undamaged_run_warns_about_nothing(tmp_path, capsys, caplog):
    caplog.set_level(logging.WARNING)
    assert cli(capsys, "run", *DUMMY, "--seeds", "0", "--output", tmp_path)[0] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "an undamaged run warns about nothing"
