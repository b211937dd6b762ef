"""Paired statistics against independent computations (scipy, hand-worked examples), ranks, agreement, plots."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from imgbench.agreement import agreement
from imgbench.crossed import product_bootstrap_means
from imgbench.errors import UserError
from imgbench.paired import compare_paired, format_signed, holm_adjust, pair_tables
from imgbench.stats import holm, rank_intervals


def _tables(base: np.ndarray, other: np.ndarray):
    """Paired tables from two (prompts × seeds) arrays, through pair_tables as compare builds them."""
    keys = [(f"{p:03d}", s) for p in range(base.shape[0]) for s in range(base.shape[1])]
    paired = pair_tables({"base": dict(zip(keys, base.ravel(), strict=True)),
                          "other": dict(zip(keys, other.ravel(), strict=True))})
    return paired.tables["base"], paired.tables["other"]


def test_known_shift_gives_an_interval_that_excludes_zero() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, (60, 1)) + rng.normal(0, 0.05, (60, 8))
    other = base + 0.05 + rng.normal(0, 0.02, (60, 8))
    result = compare_paired(*_tables(base, other))
    d = result.difference
    assert d.low > 0 and d.low < 0.05 < d.high and d.mean == pytest.approx(np.mean(other - base))
    assert result.p < 0.001 and result.verdict == "better" and result.wins > 50 and result.seeds_better == 8
    # The same shift on a lower-is-better scorer is a loss.
    worse = compare_paired(*_tables(base, other), higher_is_better=False)
    assert worse.verdict == "worse" and worse.losses == result.wins and worse.seeds_worse == 8


def test_identical_inputs_give_no_difference_and_p_one_never_nan() -> None:
    base = np.linspace(0, 1, 30 * 4).reshape(30, 4)
    for method in ("two-way", "product-bootstrap", "prompt-bootstrap"):
        result = compare_paired(*_tables(base, base.copy()), method=method)
        d = result.difference
        assert d.mean == 0 and d.low == 0 and d.high == 0 and result.p == 1.0
        assert result.verdict == "no difference" and (result.wins, result.ties, result.losses) == (0, 30, 0)
        data = result.to_dict()
        assert all(data[k] is not None and np.isfinite(data[k]) for k in ("mean_diff", "ci_low", "ci_high", "p",
                                                                              "win_rate"))


def test_paired_p_is_the_t_test_on_the_two_way_variance() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, (20, 8))
    other = base + 0.1 + rng.normal(0, 0.3, (1, 8)) + rng.normal(0, 0.3, (20, 8))
    result = compare_paired(*_tables(base, other))
    d = result.difference
    assert result.p == pytest.approx(2 * sps.t.sf(abs(d.mean) / d.se, d.df))
    assert d.df < 19  # the seed term dominates: far fewer df than a prompt-only test's 19


def test_holm_matches_a_hand_worked_example() -> None:
    # Sorted: 0.005×4 = 0.02; 0.01×3 = 0.03; 0.03×2 = 0.06; 0.04×1 = 0.04 → raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02]


def test_holm_adjust_rereads_the_verdicts() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(0, 1, (30, 8))
    clear, faint = _tables(base, base + 1.0 + rng.normal(0, 0.1, (30, 8))), \
        _tables(base, base + 0.02 + rng.normal(0, 0.1, (30, 8)))
    raw = [compare_paired(*clear), compare_paired(*faint)]
    adjusted = holm_adjust(raw)
    assert [r.p_holm for r in adjusted] == pytest.approx(holm([r.p for r in raw]))
    assert adjusted[0].verdict == "better" and all(r.p_holm >= r.p for r in adjusted)
    assert holm_adjust([]) == []


def test_win_tie_loss_with_a_tolerance() -> None:
    base = np.zeros((5, 2))
    other = np.repeat(np.array([[0.2], [0.05], [-0.05], [-0.2], [0.0]]), 2, axis=1)
    result = compare_paired(*_tables(base, other), tie_tolerance=0.1)
    assert (result.wins, result.ties, result.losses) == (1, 3, 1)
    strict = compare_paired(*_tables(base, other))
    assert (strict.wins, strict.ties, strict.losses) == (2, 1, 2)
    assert result.to_dict()["win_rate"] == pytest.approx(0.2)
    with pytest.raises(UserError, match="tie tolerance"):
        compare_paired(*_tables(base, other), tie_tolerance=-1)


def test_pairing_refuses_different_items_naming_them() -> None:
    a = {("0", 0): 1.0, ("0", 1): 2.0, ("1", 0): 3.0}
    b = {("0", 0): 1.0, ("0", 1): 2.0}
    with pytest.raises(UserError, match=r"B lacks prompt 1 seed 0"):
        pair_tables({"A": a, "B": b})


def test_pairing_counts_nonfinite_and_leaves_the_item_out_of_every_run() -> None:
    a = {("0", 0): 1.0, ("0", 1): 3.0, ("1", 0): float("nan"), ("1", 1): 5.0}
    b = {("0", 0): 0.0, ("0", 1): float("inf"), ("1", 0): 1.0, ("1", 1): 2.0}
    paired = pair_tables({"a": a, "b": b})
    assert paired.nonfinite == {"a": 1, "b": 1} and paired.n_items == 2
    assert paired.tables["a"].prompt_ids == ("0", "1") and paired.tables["a"].seeds == (0, 1)
    np.testing.assert_array_equal(paired.tables["a"].values, [[1.0, np.nan], [np.nan, 5.0]])
    np.testing.assert_array_equal(paired.tables["b"].values, [[0.0, np.nan], [np.nan, 2.0]])
    result = compare_paired(paired.tables["a"], paired.tables["b"])
    assert result.difference.nonfinite == 2 and result.difference.n_items == 2
    with pytest.raises(UserError, match="no item left"):
        compare_paired(*pair_tables({"a": {("0", 0): float("nan")}, "b": {("0", 0): 1.0}}).tables.values())


def test_rank_intervals() -> None:
    rng = np.random.default_rng(0)

    def ranked(values: np.ndarray, higher: bool):
        return rank_intervals(values.mean(axis=(1, 2)), product_bootstrap_means(values), higher)

    separated = np.stack([rng.normal(m, 0.01, (50, 4)) for m in (0.2, 0.9, 0.5)])
    assert ranked(separated, True) == ([3, 1, 2], [(3, 3), (1, 1), (2, 2)])
    assert ranked(separated, False)[0] == [1, 3, 2]
    close = np.stack([rng.normal(0.5, 0.2, (20, 4)), rng.normal(0.5, 0.2, (20, 4))])
    assert ranked(close, True)[1] == [(1, 2), (1, 2)]


def test_agreement_against_scipy_and_pairwise_truth() -> None:
    rng = np.random.default_rng(0)
    prompts = [str(i // 4) for i in range(80)]
    reference = rng.normal(0, 1, 80)
    other = reference + rng.normal(0, 0.5, 80)
    result = agreement(prompts, reference, other, samples=300)
    assert result.spearman[0] == pytest.approx(sps.spearmanr(reference, other).statistic)
    assert result.kendall[0] == pytest.approx(sps.kendalltau(reference, other).statistic)
    assert result.spearman[1] < result.spearman[0] < result.spearman[2]
    agree = total = 0
    for p in set(prompts):
        idx = [i for i, q in enumerate(prompts) if q == p]
        for i, j in itertools.combinations(idx, 2):
            total += 1
            agree += np.sign(reference[i] - reference[j]) == np.sign(other[i] - other[j])
    assert result.n_pairs == total == 20 * 6
    assert result.pairwise_accuracy[0] == pytest.approx(agree / total)
    reverse = agreement(prompts, reference, -reference, samples=100)
    assert reverse.spearman[0] == pytest.approx(-1) and reverse.pairwise_accuracy[0] == 0


def test_agreement_tie_policy() -> None:
    # Prompt p: reference ties the first pair (left out); the other scorer ties a pair the reference orders (½).
    result = agreement(["p", "p", "q", "q"], [1.0, 1.0, 1.0, 2.0], [0.0, 1.0, 5.0, 5.0], samples=50)
    assert result.reference_ties == 1 and result.n_pairs == 1 and result.pairwise_accuracy[0] == 0.5


def test_numeric_sweep_plot_draws_bands_in_parameter_order(tmp_path) -> None:
    from imgbench.plots import plot_sweep

    runs = {f"m/img@ip_scale={x}": {"mean": 0.5 + x, "ci_low": 0.45 + x, "ci_high": 0.55 + x} for x in (0.4, 0.1, 0.2)}
    runs["m/base"] = {"mean": 0.5, "ci_low": 0.45, "ci_high": 0.55}
    comparison = {"task": "t", "scorer": "s@abc", "higher_is_better": True, "overall": {"runs": runs},
                  "items": {"n_prompts": 50, "n_seeds": 4, "n_compared": 200}, "interval": {"method": "two-way"}}
    series = {"m/img": [(x, f"m/img@ip_scale={x}") for x in (0.4, 0.1, 0.2)]}
    png, svg = plot_sweep(comparison, series, "ip_scale", tmp_path, baseline="m/base")
    text = svg.read_text()
    assert png.stat().st_size > 5_000 and "ip_scale" in text and "t · s@abc" in text and "baseline m/base" in text
    assert "50 prompts × 4 seeds" in text and "two-way CI" in text


def test_per_seed_values_are_compact_in_the_scorers_units() -> None:
    assert format_signed([0.0884, 0.0961, -0.0633, -0.05]) == "+0.088 +0.096 -0.063 -0.050"
    assert format_signed([8.84, 9.61, -6.33]) == "+8.8 +9.6 -6.3"
    assert format_signed([0.0, 0.0]) == "+0.0 +0.0" and format_signed([None, 1.5]) == "n/a +1.5"
