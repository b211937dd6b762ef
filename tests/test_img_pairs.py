"""`imgbench pairs` on dummy runs picks winners/losers by the scorer; the Pick-a-Pic loader reads the real schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from imgbench.cli import main as cli
from imgbench.pairs import read_pair_source, read_pickapic

FIXTURE = Path(__file__).parent / "fixtures" / "img" / "pickapic_v2_tiny.parquet"


def dummy_run(tmp_path: Path) -> Path:
    assert cli(["run", "--method", "dummy", "--model", "dummy", "--task", "tiny", "--scorer", "dummy",
                "--output", str(tmp_path / "results")]) == 0
    (run,) = (tmp_path / "results" / "runs" / "tiny" / "dummy" / "dummy").iterdir()
    return run


def scores_by_item(run: Path) -> dict[tuple[str, int], float]:
    (file,) = (run / "scores").glob("dummy@*.jsonl")
    return {(r["prompt_id"], r["seed"]): r["value"] for r in map(json.loads, file.read_text().splitlines())}


def test_pairs_pick_best_and_worst_seed_by_scorer(tmp_path) -> None:
    run = dummy_run(tmp_path)
    out = tmp_path / "pairs.jsonl"
    assert cli(["pairs", str(run), "--scorer", "dummy", "--out", str(out)]) == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    scores = scores_by_item(run)
    assert len(pairs) == 6
    for pair in pairs:
        seeds = {s: v for (p, s), v in scores.items() if p == pair["prompt_id"]}
        assert pair["winner_seed"] == max(seeds, key=seeds.get)
        assert pair["loser_seed"] == min(seeds, key=seeds.get)
        assert pair["winner_score"] > pair["loser_score"]
        assert Path(pair["winner"]) == (run / "images" / pair["prompt_id"] / f"{pair['winner_seed']}.png").resolve()
    assert pairs[0]["prompt"] == "a red apple on a table"
    loaded = list(read_pair_source(out))
    assert [p.id for p in loaded] == [p["id"] for p in pairs]
    winner, loser = loaded[0].images()
    assert winner.size == (64, 64)


def test_all_mode_and_margin(tmp_path) -> None:
    run = dummy_run(tmp_path)
    out = tmp_path / "all.jsonl"
    assert cli(["pairs", str(run), "--scorer", "dummy", "--mode", "all", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 6 * 6  # C(4, 2) per prompt, dummy scores never tie
    assert cli(["pairs", str(run), "--scorer", "dummy", "--min-margin", "2", "--out", str(out)]) == 2
    assert cli(["pairs", str(run), "--scorer", "clipscore", "--out", str(out)]) == 2


def test_pickapic_loader_reads_real_schema_and_drops_ties() -> None:
    pairs = list(read_pickapic([FIXTURE]))
    assert [p.prompt for p in pairs] == ["caption 0", "caption 1", "caption 3", "caption 4"]
    assert [p.id for p in pairs] == ["1000", "1001", "1003", "1004"]
    for pair, row, first_wins in zip(pairs, (0, 1, 3, 4), (True, False, True, False), strict=True):
        winner, loser = pair.images()
        red_w, red_l = np.asarray(winner)[..., 0].mean(), np.asarray(loser)[..., 0].mean()
        expected_w, expected_l = (40 * row, 40 * row + 20) if first_wins else (40 * row + 20, 40 * row)
        assert abs(red_w - expected_w) < 6 and abs(red_l - expected_l) < 6
    assert len(list(read_pair_source(FIXTURE, limit=2))) == 2
    assert isinstance(pairs[0].images()[0], Image.Image)
