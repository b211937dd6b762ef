"""compare / report / sweep / plot / agree end to end on dummy-model runs, and their bad inputs (exit 2)."""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import STANDARD, item_scores, make_runs, prompt_mean, run_dir

from imgbench.api.records import Prompt, ScoreResult
from imgbench.api.scorer import Scorer
from imgbench.cli import main
from imgbench.paired import format_signed
from imgbench.runner import score_items
from imgbench.store import RunStore, Shard
from imgbench.task import load_task


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("analysis") / "results"
    make_runs(output, *STANDARD, ("dummy", []))
    return output


def run_cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_compare_reports_paired_statistics_from_item_scores(results: Path, capsys, tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    status, text, _ = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                              "dummy/dummy,dummy/dummy@salt=x", "--output", results, "--json", out)
    assert status == 0
    flat = " ".join(text.split())
    assert "12 items (6 prompts × 2 seeds) shared by all 3 runs; two-way interval" in flat
    assert "only 2 seeds: seed effects are poorly estimated" in flat and "Δ per seed" in flat and "(0 1)" in flat
    (result,) = json.loads(out.read_text())
    salted_seeds = result["overall"]["comparisons"]["dummy/dummy@salt=x"]["per_seed_diff"]
    assert format_signed(salted_seeds.values()) in flat  # Δ per seed, printed in the scorer's units
    same = result["overall"]["comparisons"]["dummy/dummy"]
    assert same["mean_diff"] == 0 and same["p"] == 1 and same["verdict"] == "no difference"
    assert same["per_seed_diff"] == {"0": 0.0, "1": 0.0} and same["seeds_tied"] == 2
    salted = result["overall"]["comparisons"]["dummy/dummy@salt=x"]
    base = prompt_mean(item_scores(run_dir(results, "base")))
    other = prompt_mean(item_scores(run_dir(results, "dummy", "x")))
    assert salted["mean_diff"] == pytest.approx(other - base)
    assert np.mean(list(salted["per_seed_diff"].values())) == pytest.approx(other - base)
    assert result["overall"]["runs"]["dummy/base"]["mean"] == pytest.approx(base)
    assert salted["wins"] + salted["ties"] + salted["losses"] == 6
    assert salted["seeds_better"] + salted["seeds_tied"] + salted["seeds_worse"] == 2
    assert salted["p_holm"] == pytest.approx(min(1.0, 2 * salted["p"]))  # the larger of two raw p = 1
    assert salted["interval"] == "two-way" and salted["df"] > 0 and salted["se"] > 0
    assert set(result["by_tag"]) == {"colors", "counting", "position"}
    assert result["interval"] == {"method": "two-way", "level": 0.95} and result["items"]["n_compared"] == 12


def test_metrics_json_equals_compare_on_the_same_run(results: Path, capsys, tmp_path: Path) -> None:
    """metrics.json and compare use one estimator over one item order: the same mean, CI and df, to the bit."""
    out = tmp_path / "cmp.json"
    assert run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against", "dummy/dummy@salt=x",
                   "--output", results, "--json", out)[0] == 0
    (result,) = json.loads(out.read_text())
    for label, folder in (("dummy/base", run_dir(results, "base")), ("dummy/dummy@salt=x", run_dir(results, "dummy",
                                                                                                  "x"))):
        metrics = json.loads((folder / "metrics.json").read_text())
        (entry,) = metrics["scorers"].values()
        assert metrics["schema_version"] == 2 and metrics["interval"]["method"] == "two-way"
        assert entry["overall"] == result["overall"]["runs"][label]
        for tag, block in result["by_tag"].items():
            assert entry["by_tag"][tag] == block["runs"][label]


@pytest.mark.parametrize("interval", ["product-bootstrap", "prompt-bootstrap"])
def test_compare_interval_option(results: Path, capsys, tmp_path: Path, interval: str) -> None:
    out = tmp_path / "cmp.json"
    status, text, _ = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                              "dummy/dummy@salt=x", "--output", results, "--interval", interval, "--seed", "3",
                              "--no-tags", "--json", out)
    assert status == 0 and f"{interval} interval" in text and "2000 draws, seed 3" in " ".join(text.split())
    (result,) = json.loads(out.read_text())
    assert result["interval"] == {"method": interval, "level": 0.95, "samples": 2000, "seed": 3}
    salted = result["overall"]["comparisons"]["dummy/dummy@salt=x"]
    assert salted["interval"] == interval and salted["bootstrap"]["seed"] == 3 and salted["df"] is None
    assert ("conditional on these seeds" in salted["note"]) == (interval == "prompt-bootstrap")
    with pytest.raises(SystemExit, match="2"):
        main(["compare", "--task", "tiny", "--baseline", "dummy/base", "--against", "dummy/dummy", "--interval",
              "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_compare_refuses_runs_with_different_items_unless_shared(results: Path, capsys) -> None:
    make_runs(results, ("dummy", ["salt=q"]), seeds="0-2")
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                             "dummy/dummy@salt=q", "--output", results)
    assert status == 2
    assert "dummy/base lacks prompt 0 seed 2" in err and "--shared" in err
    status, text, _ = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                              "dummy/dummy@salt=q", "--output", results, "--shared", "--no-tags")
    assert status == 0
    flat = " ".join(text.split())
    assert "12 items (6 prompts × 2 seeds) shared by all 2 runs" in flat and "dummy/dummy@salt=q: 6 item(s)" in flat


@pytest.mark.parametrize(("args", "message"), [
    (["--baseline", "dummy/nothing", "--against", "dummy/base"], "no run matches 'dummy/nothing'"),
    (["--baseline", "dummy/base", "--against", "dummy/dummy", "--scorer", "clipscore"],
     "has no scores from scorer 'clipscore'"),
    (["--baseline", "dummy/base", "--against", "dummy/base"], "listed twice"),
])
def test_compare_bad_inputs_exit_2(results: Path, capsys, args: list[str], message: str) -> None:
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--output", results, *args)
    assert status == 2 and message in err


def test_more_bad_inputs_exit_2_and_json_goes_into_new_folders(results: Path, capsys, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["compare", "--task", "tiny", "--baseline", "dummy/base", "--against", ","], "--against names no run"),
        (["compare", "--task", "tiny", "--baseline", "dummy/base", "--against", "dummy/dummy", "--json",
          afile / "c.json"], "is not a folder"),
        (["report", "--out", afile], "is not a folder"),
        (["report", "--html-prompts", "-1", "--out", tmp_path / "r"], "--html-prompts"),
        (["plot", "--task", "tiny", "--method", "dummy", "--param", "salt", "--out", afile], "is not a folder"),
    ]
    for args, message in cases:
        status, _, err = run_cli(capsys, *args, "--output", results)
        assert status == 2 and message in " ".join(err.split()), (args, err)
    nested = tmp_path / "new" / "deeper" / "cmp.json"
    status, _, _ = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against", "dummy/dummy",
                           "--output", results, "--json", nested, "--no-tags")
    assert status == 0 and json.loads(nested.read_text())[0]["baseline"] == "dummy/base"


def test_ambiguous_selector_lists_candidates(tmp_path: Path, capsys) -> None:
    output = tmp_path / "results"
    make_runs(output, ("base", []))
    assert main(["run", "--task", "tiny", "--model", "dummy", "--dtype", "fp16", "--seeds", "0-1",
                 "--output", str(output)]) == 0
    capsys.readouterr()
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                             "dummy/base", "--output", output)
    assert status == 2 and "'dummy/base' matches 2 runs" in err and "Name one by its run id" in err
    ids = sorted(p.parent.name for p in output.glob("runs/tiny/dummy/base/*/run.json"))
    assert all(i in err for i in ids)
    status, _, _ = run_cli(capsys, "compare", "--task", "tiny", "--baseline", ids[0], "--against", ids[1],
                           "--output", output)
    assert status == 0


def test_run_without_scores_and_empty_folder_exit_2(tmp_path: Path, capsys) -> None:
    output = tmp_path / "results"
    status, _, err = run_cli(capsys, "report", "--output", output)
    assert status == 2 and "no run folders" in err and "imgbench run" in err
    assert main(["generate", "--task", "tiny", "--model", "dummy", "--seeds", "0", "--output", str(output)]) == 0
    capsys.readouterr()
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                             "dummy/base", "--output", output)
    assert status == 2 and "has no scores" in err and "imgbench score --run " in err
    status, _, err = run_cli(capsys, "report", "--output", output)
    assert status == 2 and "none of the runs has scores" in err
    # the command the first message suggests works as printed
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                             "dummy/base", "--output", output, "--scorer", "dummy")
    suggested = re.search(r"`imgbench (score [^`]+)`", " ".join(err.split())).group(1).replace("NAME", "dummy")
    assert main(shlex.split(suggested)) == 0
    status, _, err = run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/base", "--against",
                             "dummy/base", "--output", output)
    assert status == 2 and "listed twice" in err  # scored now: past the "no scores" check


def test_report_writes_leaderboards_matching_item_scores(results: Path, capsys, tmp_path: Path) -> None:
    out = tmp_path / "report"
    status, text, _ = run_cli(capsys, "report", "--output", results, "--task", "tiny", "--runs",
                              "dummy/base,dummy/dummy@salt=x,dummy/dummy@salt=y", "--out", out)
    assert status == 0
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 3
    for row in rows:
        method, _, salt = row["row"].split("/")[1].partition("@salt=")
        assert float(row["mean"]) == pytest.approx(prompt_mean(item_scores(run_dir(results, method, salt or None))))
        assert int(row["n_items"]) == 12 and int(row["rank_low"]) <= int(row["rank"]) <= int(row["rank_high"])
    best = max(rows, key=lambda r: float(r["mean"]))
    # best only where the statistics say so: the top mean, first in every rank interval (1–1)
    for row in rows:
        assert (row["best"] == "True") == (row is best and row["rank_low"] == row["rank_high"] == "1")
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["columns"][0]["n_items"] == 12 and board["interval"]["method"] == "two-way"
    assert board["ranks"] == {"method": "product-bootstrap", "level": 0.95, "samples": 2000, "seed": 0}
    # the default baseline is the model's one `base` row; Δ per seed is there for every other row
    assert {(c["row"], c["baseline"]) for c in board["comparisons"]} == {
        ("dummy/dummy@salt=x", "dummy/base"), ("dummy/dummy@salt=y", "dummy/base")}
    assert all(set(c["per_seed_diff"]) == {"0", "1"} and c["p_holm"] >= c["p"] for c in board["comparisons"])
    markdown = (out / "leaderboard.md").read_text()
    assert (f"**{float(best['mean']):.4f}" in markdown) == (best["best"] == "True")
    assert "tiny · dummy ↑ (6 prompts × 2 seeds, 12 items)" in markdown
    assert "two-way interval (prompts and seeds crossed" in markdown and "cluster-bootstrap" not in markdown
    assert "## Against baseline rows" in markdown and "| Δ per seed (0 1) |" in markdown
    latex = (out / "leaderboard.tex").read_text()
    assert (r"\textbf{" + f"{float(best['mean']):.4f}" + "}" in latex) == (best["best"] == "True")
    assert r"\bottomrule" in latex
    html = (out / "index.html").read_text()
    assert html.count("<img ") == 3 * 6 * 2 and "a red apple on a table" in html
    # the dummy method's JSON artefact is shown under each of its images (base runs have none)
    assert html.count("<summary>note</summary>") == 2 * 6 * 2 and "&quot;seed&quot;: 1" in html
    assert "http" not in html  # self-contained: relative links only
    assert html.count("<tr class='comparison'>") == 2 and "Against baseline rows" in html


def test_report_cells_match_compare_and_take_a_baseline(results: Path, capsys, tmp_path: Path) -> None:
    """A leaderboard cell's CI is compare's; --baseline picks the reference row and --interval the estimator."""
    out, cmp = tmp_path / "report", tmp_path / "cmp.json"
    runs = "dummy/base,dummy/dummy@salt=x,dummy/dummy@salt=y"
    assert run_cli(capsys, "report", "--output", results, "--task", "tiny", "--runs", runs, "--out", out,
                   "--baseline", "dummy/dummy@salt=x", "--interval", "product-bootstrap", "--seed", "2")[0] == 0
    assert run_cli(capsys, "compare", "--task", "tiny", "--baseline", "dummy/dummy@salt=x", "--against",
                   "dummy/base,dummy/dummy@salt=y", "--output", results, "--interval", "product-bootstrap", "--seed",
                   "2", "--json", cmp, "--no-tags")[0] == 0
    board, (result,) = json.loads((out / "leaderboard.json").read_text()), json.loads(cmp.read_text())
    for cell in board["cells"]:
        run = result["overall"]["runs"][cell["row"]]
        assert (cell["mean"], cell["ci_low"], cell["ci_high"]) == (run["mean"], run["ci_low"], run["ci_high"])
    for entry in board["comparisons"]:
        assert entry["baseline"] == "dummy/dummy@salt=x"
        expected = result["overall"]["comparisons"][entry["row"]]
        assert {k: entry[k] for k in expected} == expected
    assert "product-bootstrap interval" in (out / "leaderboard.md").read_text()
    status, _, err = run_cli(capsys, "report", "--output", results, "--task", "tiny", "--out", out, "--baseline",
                             "dummy/nothing")
    assert status == 2 and "--baseline dummy/nothing matches no row" in err


def test_report_says_which_items_it_left_out(results: Path, capsys, tmp_path: Path) -> None:
    make_runs(results, ("dummy", ["salt=q"]), seeds="0-2")
    status, text, _ = run_cli(capsys, "report", "--output", results, "--out", tmp_path / "r")
    assert status == 0
    assert "dummy/dummy@salt=q has 6 item(s) other runs lack, left out" in " ".join(text.split())
    status, _, err = run_cli(capsys, "report", "--output", results, "--scorer", "nope")
    assert status == 2 and "no run has scores from scorer 'nope'" in err


def test_sweep_makes_cached_runs_and_plot_draws_them(tmp_path: Path, capsys) -> None:
    output = tmp_path / "results"
    make_runs(output, ("base", []))
    args = ["sweep", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--param", "salt=a,b,c",
            "--seeds", "0-1", "--output", output]
    status, text, _ = run_cli(capsys, *args)
    assert status == 0 and len(list(output.glob("runs/tiny/dummy/dummy/*/run.json"))) == 3
    assert "salt=b" in text and "imgbench plot --task tiny --method dummy --param salt" in text
    status, text, _ = run_cli(capsys, *args)  # cached: nothing regenerated
    assert status == 0 and all(line.split("│")[3].strip() == "0" for line in text.splitlines() if "salt=" in line
                               and "│" in line)
    plots = tmp_path / "plots"
    status, _, _ = run_cli(capsys, "plot", "--task", "tiny", "--method", "dummy", "--param", "salt", "--baseline",
                           "dummy/base", "--output", output, "--out", plots)
    assert status == 0
    for stem in ("sweep-salt", "by-tag", "win-rate"):
        assert (plots / f"{stem}.png").stat().st_size > 5_000
        svg = (plots / f"{stem}.svg").read_text()
        assert "tiny · dummy@" in svg  # task and scorer in the title (SVG keeps text as text)
    sweep_svg = (plots / "sweep-salt.svg").read_text()
    assert "baseline dummy/base" in sweep_svg and "higher is better" in sweep_svg
    status, _, err = run_cli(capsys, "sweep", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--param",
                             "salt", "--output", output)
    assert status == 2 and "--param expects key=v1,v2" in err
    status, _, err = run_cli(capsys, "plot", "--task", "tiny", "--method", "nosuch", "--param", "x", "--output",
                             output)
    assert status == 2 and "no runs of method 'nosuch'" in err


class InverseScorer(Scorer):
    """One minus the dummy scorer: perfectly anti-correlated with it."""

    name = "inverse"
    value_range = (0.0, 1.0)

    def score(self, images: Sequence, prompts: Sequence[Prompt]) -> list[ScoreResult]:
        from imgbench.testing import DummyScorer

        return [ScoreResult(value=1 - r.value) for r in DummyScorer().score(images, prompts)]


def test_agree_on_two_scorers(results: Path, capsys, tmp_path: Path) -> None:
    from imgbench import catalog

    prompts = load_task(catalog.tasks().get("tiny").spec).prompts
    for method, salt in (("base", None), ("dummy", "x")):
        store = RunStore(run_dir(results, method, salt))
        items = [(p, s) for p in prompts for s in (0, 1)]
        assert score_items(store, InverseScorer(), items, Shard(), batch_size=4) == 12
    out = tmp_path / "agree.json"
    status, text, _ = run_cli(capsys, "agree", "--task", "tiny", "--scorers", "dummy,inverse", "--output", results,
                              "--json", out)
    assert status == 0 and "24 images of 6 prompts from 2 run(s)" in " ".join(text.split())
    data = json.loads(out.read_text())
    assert data["spearman"]["value"] == pytest.approx(-1) and data["kendall"]["value"] == pytest.approx(-1)
    assert data["pairwise_accuracy"]["value"] == 0 and data["n_pairs"] + data["reference_ties"] == 6 * 6
    assert np.isclose(data["spearman"]["ci_high"], -1)
    status, _, err = run_cli(capsys, "agree", "--task", "tiny", "--scorers", "dummy", "--output", results)
    assert status == 2 and "two different scorers" in err


def test_selectors_keep_multi_parameter_variants_whole() -> None:
    """`--against a/b@x=1,y=2,c/d` is two selectors; the label a run shows can be pasted back as printed."""
    from imgbench.selection import RunInfo, select_run, split_selectors

    assert split_selectors(["sdxl/img@ip_scale=0.4,steps=3,sdxl/base", "79f3a5ed211a,  ,sdxl/img"]) == \
        ["sdxl/img@ip_scale=0.4,steps=3", "sdxl/base", "79f3a5ed211a", "sdxl/img"]
    assert split_selectors([","]) == []

    def run(run_id: str, variant: dict) -> RunInfo:
        return RunInfo(root=Path(run_id), run_id=run_id, task="t", model="sdxl", method="img", variant=variant,
                       manifest={})

    runs = [run("aaa", {"ip_scale": 0.4}), run("bbb", {"ip_scale": 0.4, "steps": 3}), run("ccc", {})]
    assert runs[1].label == "sdxl/img@ip_scale=0.4,steps=3"
    assert [select_run(runs, s).run_id for s in split_selectors([f"{runs[1].label},{runs[0].label},sdxl/img"])] \
        == ["bbb", "aaa", "ccc"]


def test_sweep_says_when_two_points_are_one_run(tmp_path: Path, capsys) -> None:
    status, text, _ = run_cli(capsys, "sweep", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--param",
                              "delay=0,0.001", "--seeds", "0", "--output", tmp_path)
    assert status == 0 and "note: delay=0.001 is the same run as delay=0" in text


def test_plot_leaves_out_runs_that_vary_another_parameter() -> None:
    from imgbench.cli.plot import drop_lone_series

    series = {"m/img": [(0.2, "a"), (0.4, "b")], "m/img@passes=1": [(0.8, "c")],
              "m/img@passes=2": [(0.2, "d"), (0.8, "e")], "m/base": [(None, "f")]}
    kept, lone = drop_lone_series(series)
    assert lone == ["m/img@passes=1"]
    assert set(kept) == {"m/img", "m/img@passes=2", "m/base"}
