"""Held-out noise (DESIGN §8): parts record the seeds they saw, and a run whose parts saw its seeds is flagged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imgbench.methods.img import method as img_method

from imgbench.cli import main as cli
from imgbench.provenance import leaks, read_part, seed_ranges, seeds_in

SHIPPED_ALIGNER = Path(img_method.__file__).parent / "shapes" / "aligner.safetensors"


def test_seed_ranges_fold_runs_and_answer_membership():
    assert seed_ranges([5, 1, 2, 3, 9, 10, 2]) == [[1, 3], [5, 5], [9, 10]]
    assert seed_ranges([]) == []
    assert seeds_in(range(0, 12), [[1, 3], [9, 10]]) == [1, 2, 3, 9, 10]


def test_leaks_name_the_part_and_the_shared_seeds_and_ignore_unknown_parts():
    parts = [{"name": "aligner", "seeds": [[0, 3], [50_000, 50_007]]}, {"name": "mllm", "seeds": [[1000, 7087]]},
             {"name": "released", "seeds": None}]
    (line,) = leaks(parts, range(0, 8))
    assert line.startswith("part aligner") and "0, 1, 2, 3" in line and "not held out" in line
    assert leaks(parts, range(100, 108)) == []


def test_read_part_is_unknown_without_a_seed_record(tmp_path):
    assert read_part("x", None)["seeds"] is None
    (tmp_path / "m.json").write_text(json.dumps({"data": "renders, no record"}))
    assert read_part("x", tmp_path / "m.json")["seeds"] is None
    (tmp_path / "m.json").write_text(json.dumps({"data": {"seeds": [[1000, 1001]], "split_version": 2}}))
    assert read_part("x", tmp_path / "m.json") == {"name": "x", "manifest": str(tmp_path / "m.json"),
                                                   "seeds": [[1000, 1001]], "split_version": 2}


def _leaky_img_run(tmp_path: Path, seeds: str) -> list[str]:
    """img with a copy of the shipped aligner whose manifest says its pairs used seeds 0-3 (the test seeds)."""
    part = tmp_path / "leaky"
    part.mkdir(exist_ok=True)
    shutil.copy(SHIPPED_ALIGNER, part / "aligner.safetensors")
    manifest = json.loads(SHIPPED_ALIGNER.with_suffix(".json").read_text())
    (part / "aligner.json").write_text(json.dumps({**manifest, "data": {"seeds": [[0, 3]], "split_version": 1}}))
    common = ["--task", "shapes", "--limit", "1", "--batch-size", "64", "--scorer", "shapes-exact",
              "--output", str(tmp_path / "out"), "--seeds", seeds]
    assert cli(["run", *common, "--method", "img", "--method-arg", f"aligner={part / 'aligner.safetensors'}"]) == 0
    return common


def test_a_part_trained_on_a_test_seed_is_flagged_by_run(tmp_path, caplog):
    caplog.set_level("WARNING", logger="imgbench")
    _leaky_img_run(tmp_path, "100")
    assert "not held out" not in caplog.text  # val seeds: the part never saw them
    _leaky_img_run(tmp_path, "2-3")
    assert "part aligner was trained on data drawn with seed(s) 2, 3" in caplog.text
    (run,) = (tmp_path / "out" / "runs" / "shapes" / "shapes" / "img").iterdir()
    parts = json.loads((run / "run.json").read_text())["parts"]
    assert parts[0] == {"name": "aligner", "manifest": str(tmp_path / "leaky" / "aligner.json"), "seeds": [[0, 3]],
                        "split_version": 1}


def test_compare_and_report_flag_a_result_whose_part_saw_its_seeds(tmp_path, capsys):
    common = _leaky_img_run(tmp_path, "2-3")
    assert cli(["run", *common, "--method", "base"]) == 0
    capsys.readouterr()
    leaky = f"shapes/img@aligner={tmp_path / 'leaky' / 'aligner.safetensors'}"
    out = str(tmp_path / "out")
    assert cli(["compare", "--task", "shapes", "--baseline", "shapes/base", "--against", leaky, "--scorer",
                "shapes-exact", "--no-tags", "--output", out, "--json", str(tmp_path / "cmp.json")]) == 0
    assert "part aligner was trained on data drawn with seed(s) 2, 3" in " ".join(capsys.readouterr().out.split())
    (result,) = json.loads((tmp_path / "cmp.json").read_text())
    assert list(result["leaks"]) == [leaky]
    assert cli(["report", "--task", "shapes", "--output", out, "--out", str(tmp_path / "report")]) == 0
    assert f"{leaky}: part aligner was trained" in (tmp_path / "report" / "leaderboard.md").read_text()
