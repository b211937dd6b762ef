"""Paired statistics against independent computations (scipy, brute force, hand-worked examples)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from imgbench.agreement import agreement
from imgbench.errors import UserError
from imgbench.paired import compare_paired, pair_prompts, sign_flip_pvalue
from imgbench.stats import bootstrap_mean_ci, holm, rank_intervals, summarise


def test_wilcoxon_matches_scipy_on_the_nonzero_differences() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.5, 0.1, 40)
    other = base + rng.normal(0.02, 0.05, 40)
    other[:7] = base[:7]  # seven exact zero differences
    result = compare_paired(base, other)
    diffs = other - base
    expected = sps.wilcoxon(diffs[diffs != 0])
    assert result.wilcoxon["n_zero"] == 7 and result.wilcoxon["n_nonzero"] == 33
    assert result.wilcoxon["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.wilcoxon["statistic"] == pytest.approx(expected.statistic)


def test_known_shift_gives_an_interval_that_excludes_zero() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 60)
    other = base + 0.05 + rng.normal(0, 0.02, 60)
    result = compare_paired(base, other)
    assert result.ci_low > 0 and result.ci_low < 0.05 < result.ci_high
    assert result.mean_diff == pytest.approx(np.mean(other - base))
    assert result.p_permutation < 0.001 and result.wilcoxon["p"] < 0.001
    assert result.verdict == "better" and result.wins > 50
    # The same shift on a lower-is-better scorer is a loss.
    worse = compare_paired(base, other, higher_is_better=False)
    assert worse.verdict == "worse" and worse.losses == result.wins


def test_identical_inputs_give_no_difference_and_p_one_never_nan() -> None:
    base = np.linspace(0, 1, 30)
    result = compare_paired(base, base.copy())
    assert result.mean_diff == 0 and result.ci_low == 0 and result.ci_high == 0
    assert result.p_permutation == 1.0 and result.wilcoxon["p"] == 1.0
    assert result.wilcoxon["note"] == "no difference" and result.verdict == "no difference"
    assert (result.wins, result.ties, result.losses) == (0, 30, 0)
    data = result.to_dict()
    assert all(data[k] is not None and np.isfinite(data[k]) for k in ("mean_diff", "ci_low", "ci_high",
                                                                          "p_permutation", "win_rate"))


def test_exact_sign_flip_matches_brute_force() -> None:
    diffs = np.array([0.3, -0.1, 0.25, 0.4, -0.05, 0.2, 0.1, 0.0])
    observed = abs(diffs.mean())
    count = sum(abs(np.mean(diffs * np.array(signs))) >= observed - 1e-12
                for signs in itertools.product([1, -1], repeat=diffs.size))
    p, how = sign_flip_pvalue(diffs)
    assert p == count / 2 ** diffs.size and how.startswith("exact")


def test_random_sign_flip_is_seeded_and_never_zero() -> None:
    diffs = np.full(40, 0.5)
    p1, how = sign_flip_pvalue(diffs, samples=999, seed=4)
    assert p1 == 1 / 1000 and "seed 4" in how
    rng = np.random.default_rng(1)
    noisy = rng.normal(0.1, 1, 40)
    assert sign_flip_pvalue(noisy, seed=5) == sign_flip_pvalue(noisy, seed=5)


def test_bootstrap_is_identical_under_a_fixed_seed_and_differs_otherwise() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 80)
    assert bootstrap_mean_ci(values, seed=11) == bootstrap_mean_ci(values, seed=11)
    assert bootstrap_mean_ci(values, seed=11) != bootstrap_mean_ci(values, seed=12)
    other = values + rng.normal(0.1, 1, 80)
    first, second = compare_paired(values, other, seed=7), compare_paired(values, other, seed=7)
    assert (first.ci_low, first.ci_high, first.p_permutation) == (second.ci_low, second.ci_high, second.p_permutation)
    assert first.bootstrap == {"interval": "percentile", "unit": "prompt (paired)", "samples": 2000, "seed": 7,
                               "level": 0.95}
    assert (compare_paired(values, other, seed=8).ci_low, compare_paired(values, other, seed=8).ci_high) != \
        (first.ci_low, first.ci_high)


def test_holm_matches_a_hand_worked_example() -> None:
    # Sorted: 0.005×4 = 0.02; 0.01×3 = 0.03; 0.03×2 = 0.06; 0.04×1 = 0.04 → raised to 0.06 (monotone).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == [0.02]


def test_win_tie_loss_with_a_tolerance() -> None:
    base = np.zeros(5)
    other = np.array([0.2, 0.05, -0.05, -0.2, 0.0])
    result = compare_paired(base, other, tie_tolerance=0.1)
    assert (result.wins, result.ties, result.losses) == (1, 3, 1)
    strict = compare_paired(base, other)
    assert (strict.wins, strict.ties, strict.losses) == (2, 1, 2)
    assert result.win_rate == pytest.approx(0.2)


def test_pairing_refuses_different_items_naming_them() -> None:
    a = {("0", 0): 1.0, ("0", 1): 2.0, ("1", 0): 3.0}
    b = {("0", 0): 1.0, ("0", 1): 2.0}
    with pytest.raises(UserError, match=r"B lacks prompt 1 seed 0"):
        pair_prompts({"A": a, "B": b})


def test_pairing_averages_seeds_and_counts_nonfinite() -> None:
    a = {("0", 0): 1.0, ("0", 1): 3.0, ("1", 0): float("nan"), ("1", 1): 5.0}
    b = {("0", 0): 0.0, ("0", 1): float("inf"), ("1", 0): 1.0, ("1", 1): 2.0}
    paired = pair_prompts({"a": a, "b": b})
    assert paired.nonfinite == {"a": 1, "b": 1} and paired.n_items == 2
    assert paired.prompt_ids == ["0", "1"]
    assert paired.values["a"].tolist() == [1.0, 5.0] and paired.values["b"].tolist() == [0.0, 2.0]


def test_summary_counts_nonfinite_and_serialises_without_nan() -> None:
    summary = summarise(["a", "a", "b"], [1.0, float("nan"), 3.0])
    assert summary.nonfinite == 1 and summary.n_images == 2 and summary.mean == 2.0
    empty = summarise(["a"], [float("nan")]).to_dict()
    assert empty["mean"] is None and empty["nonfinite"] == 1


def test_rank_intervals() -> None:
    rng = np.random.default_rng(0)
    separated = np.column_stack([rng.normal(m, 0.01, 50) for m in (0.2, 0.9, 0.5)])
    ranks, intervals = rank_intervals(separated, higher_is_better=True)
    assert ranks == [3, 1, 2] and intervals == [(3, 3), (1, 1), (2, 2)]
    ranks, intervals = rank_intervals(separated, higher_is_better=False)
    assert ranks == [1, 3, 2]
    close = np.column_stack([rng.normal(0.5, 0.2, 20), rng.normal(0.5, 0.2, 20)])
    _, intervals = rank_intervals(close, higher_is_better=True)
    assert intervals == [(1, 2), (1, 2)]


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
                  "items": {"n_prompts": 50, "n_compared": 200}}
    series = {"m/img": [(x, f"m/img@ip_scale={x}") for x in (0.4, 0.1, 0.2)]}
    png, svg = plot_sweep(comparison, series, "ip_scale", tmp_path, baseline="m/base")
    text = svg.read_text()
    assert png.stat().st_size > 5_000 and "ip_scale" in text and "t · s@abc" in text and "baseline m/base" in text
