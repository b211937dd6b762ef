"""The HTML report samples prompts across tags and outcomes and shows reasons; plots draw what they say."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from imgbench.cli import main
from imgbench.html_report import _reason, sample_prompts
from imgbench.plots import wilson_interval


def test_sample_takes_tags_in_turn_and_failures_first() -> None:
    # 80 easy prompts (all correct) first, then 20 hard ones of another tag, half of them wrong
    ids = [str(i) for i in range(100)]
    texts = {p: (f"prompt {p}", ("single-object" if int(p) < 80 else "position",)) for p in ids}
    values = {(p, 0): (1.0 if int(p) < 80 or int(p) % 2 else 0.0) for p in ids}
    per_run = {"shapes/base": {0: SimpleNamespace(values=values, higher_is_better=True)}}
    shown = sample_prompts(ids, per_run, texts, 10)
    assert len(shown) == 10 and shown == sorted(shown, key=int)  # task order
    hard = [p for p in shown if int(p) >= 80]
    assert len(hard) == 5 and sum(values[(p, 0)] == 0 for p in hard) >= 2  # failures are shown
    assert sample_prompts(ids[:5], per_run, texts, 10) == ids[:5]


def test_reasons_are_words_in_the_page() -> None:
    assert _reason({"correct": False, "reason": "expected 2 circle, found 1"}) == "expected 2 circle, found 1"
    assert _reason({"correct": True, "reason": "ok"}) == "" and _reason(None) == ""


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_a_one_point_sweep_is_plotted_with_a_warning(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--task", "tiny", "--model", "dummy", "--method", "base", "--seeds", "0-1"]) == 0
    assert main(["run", "--task", "tiny", "--model", "dummy", "--method", "dummy", "--seeds", "0-1",
                 "--method-arg", "salt=a"]) == 0
    capsys.readouterr()
    assert main(["plot", "--task", "tiny", "--method", "dummy", "--param", "salt", "--baseline", "dummy/base",
                 "--out", "plots"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: the salt sweep has one point per line" in out
    assert (tmp_path / "plots" / "win-rate.png").exists()
