"""Calibration of the prompt × seed estimators by simulation (DESIGN §6), and their hand-checked numbers.

Datasets: 40 prompts × 8 seeds, Y = μ + a_p + b_s + e_ps with a_p, b_s, e_ps normal, 1,000 seeded
datasets per scenario. For paired differences under the null, D = other − baseline has its own
prompt effect, seed × method effect and error, and mean 0. The two-way interval must cover μ ≥ 92% and
the paired test reject ≤ 7.5% at 5% in every scenario; the old prompt-only interval (the
`prompt-bootstrap` option) must be shown undercovering. A binary scenario thresholds a crossed latent,
as the shapes world's exact checker scores 0/1. Vectorised: a few seconds in all. `pytest -s` prints
the measured rates (docs/statistics.md quotes them).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from imgbench.crossed import (
    PRODUCT_BOOTSTRAP,
    PROMPT_BOOTSTRAP,
    ItemTable,
    anova_two_way,
    estimate,
    estimate_with_test,
    product_bootstrap_means,
    t_interval,
    t_pvalue,
)
from imgbench.paired import compare_paired
from imgbench.stats import percentile_interval

DATASETS = 1000
PROMPTS, SEEDS = 40, 8
MU = 0.5
SCENARIOS = {"seed-dominated": (0.5, 1.0, 0.5), "balanced": (1.0, 1.0, 1.0), "interaction-dominated": (0.3, 0.3, 1.0)}
"""(σ_prompt, σ_seed, σ_error)."""


def _crossed(rng: np.random.Generator, sigmas: tuple[float, float, float]) -> np.ndarray:
    """DATASETS tables a_p + b_s + e_ps, shape (DATASETS, PROMPTS, SEEDS), mean 0."""
    s_prompt, s_seed, s_error = sigmas
    return (rng.normal(0, s_prompt, (DATASETS, PROMPTS, 1)) + rng.normal(0, s_seed, (DATASETS, 1, SEEDS))
            + rng.normal(0, s_error, (DATASETS, PROMPTS, SEEDS)))


def _table(values: np.ndarray) -> ItemTable:
    return ItemTable(tuple(f"{p:02d}" for p in range(values.shape[0])), tuple(range(values.shape[1])), values,
                     np.zeros(values.shape, dtype=bool))


def _covers(low: np.ndarray, high: np.ndarray, truth: float) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


def _simulate(name: str, rng: np.random.Generator) -> dict[str, float]:
    sigmas = SCENARIOS[name]
    y = MU + _crossed(rng, sigmas)
    mean, var, df = anova_two_way(y)
    two_way = _covers(*t_interval(mean, var, df), MU)
    product = product_bootstrap_means(y, seed=1)
    product_cover = _covers(np.quantile(product, 0.025, axis=0), np.quantile(product, 0.975, axis=0), MU)
    prompt_only = [estimate(_table(v), PROMPT_BOOTSTRAP, seed=i) for i, v in enumerate(y)]
    prompt_cover = float(np.mean([e.low <= MU <= e.high for e in prompt_only]))
    null = _crossed(rng, sigmas)  # D under the null: its own prompt, seed × method and error effects
    fpr = float(np.mean(t_pvalue(*anova_two_way(null)) < 0.05))
    # the public entry points give the vectorised core's numbers
    for i in range(3):
        e, p = estimate_with_test(_table(y[i]))
        assert (e.mean, e.se ** 2, e.df) == pytest.approx((mean[i], var[i], df[i]))
        assert compare_paired(_table(np.zeros((PROMPTS, SEEDS))), _table(null[i])).p == pytest.approx(
            float(t_pvalue(*anova_two_way(null[i]))))
    return {"two-way": two_way, "product-bootstrap": product_cover, "prompt-only": prompt_cover, "null FPR": fpr}


def _simulate_binary(name: str, rng: np.random.Generator) -> dict[str, float]:
    """0/1 scores: a crossed normal latent thresholded at 0. Null D: two methods whose seed effects differ by ±c_s."""
    sigmas = SCENARIOS[name]
    latent_mu = 0.3
    truth = float(sps.norm.cdf(latent_mu / np.sqrt(sum(s ** 2 for s in sigmas))))
    y = (latent_mu + _crossed(rng, sigmas) > 0).astype(float)
    coverage = _covers(*t_interval(*anova_two_way(y)), truth)
    shared = latent_mu + _crossed(rng, sigmas)
    method_seed = rng.normal(0, sigmas[1], (DATASETS, 1, SEEDS))
    own_error = rng.normal(0, sigmas[2], (2, DATASETS, PROMPTS, SEEDS))
    base = (shared - method_seed + own_error[0] > 0).astype(float)
    other = (shared + method_seed + own_error[1] > 0).astype(float)
    fpr = float(np.mean(t_pvalue(*anova_two_way(other - base)) < 0.05))
    return {"binary two-way": coverage, "binary null FPR": fpr}


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, float]]:
    rates = {}
    for index, name in enumerate(SCENARIOS):
        rng = np.random.default_rng(20240 + index)
        rates[name] = {**_simulate(name, rng), **_simulate_binary(name, rng)}
    print(f"\n{DATASETS} datasets of {PROMPTS} prompts × {SEEDS} seeds per scenario; coverage of the 95% interval, "
          f"false-positive rate of the paired test at 5%:")
    for name, row in rates.items():
        print(f"  {name:22s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return rates


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_way_interval_covers_at_least_92_percent(measured, scenario: str) -> None:
    assert measured[scenario]["two-way"] >= 0.92
    assert measured[scenario]["binary two-way"] >= 0.92


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_paired_test_false_positive_rate_at_most_7_5_percent(measured, scenario: str) -> None:
    assert measured[scenario]["null FPR"] <= 0.075
    assert measured[scenario]["binary null FPR"] <= 0.075


def test_prompt_only_interval_undercovers(measured) -> None:
    """The old interval (prompts resampled, seeds averaged) is conditional on 8 noise tensors."""
    assert min(row["prompt-only"] for row in measured.values()) < 0.80


# hand-checked numbers ---------------------------------------------------------------------------
TABLE_3X2 = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 6.0]])


def test_balanced_anova_matches_a_hand_computation() -> None:
    # Row means 1.5, 4, 5; seed means 8/3, 13/3; grand 3.5.
    # MS_P = 2·(2² + 0.5² + 1.5²)/2 = 6.5; MS_S = 3·2·(5/6)²/1 = 25/6; residuals ±1/3, ±1/6 → MS_E = (1/3)/2 = 1/6.
    # V = (6.5 − 1/6 + 25/6 − 1/6 + 1/6)/6 = 1.75;
    # df = (6.5 + 25/6 − 1/6)² / (6.5²/2 + (25/6)²/1 + (1/6)²/2) = 110.25/38.5.
    result, p = estimate_with_test(_table(TABLE_3X2))
    assert result.mean == pytest.approx(3.5) and result.se == pytest.approx(1.75 ** 0.5)
    assert result.df == pytest.approx(110.25 / 38.5)
    half = sps.t.ppf(0.975, 110.25 / 38.5) * 1.75 ** 0.5
    assert (result.low, result.high) == pytest.approx((3.5 - half, 3.5 + half))
    assert p == pytest.approx(2 * sps.t.sf(3.5 / 1.75 ** 0.5, 110.25 / 38.5))
    assert result.per_seed == pytest.approx({0: 8 / 3, 1: 13 / 3})
    assert (result.n_prompts, result.n_seeds, result.n_items) == (3, 2, 6)
    assert "only 2 seeds" in result.note and result.bootstrap is None


def test_components_at_zero_use_the_matching_df() -> None:
    # Seeds identical up to a prompt offset: MS_S = MS_E = 0, so only the prompt term is used, with P − 1 df.
    only_prompts = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    result = estimate(_table(only_prompts))
    assert result.df == 2 and result.se ** 2 == pytest.approx(np.var([1, 2, 4], ddof=1) * 2 / 6)
    only_seeds = only_prompts.T.copy()
    assert estimate(_table(only_seeds)).df == 2  # now P = 2, S = 3 and only the seed term: S − 1


def test_zero_variance_gives_a_point_interval_never_nan() -> None:
    constant = estimate_with_test(_table(np.full((5, 8), 0.3)))
    assert (constant[0].low, constant[0].mean, constant[0].high, constant[0].se) == (0.3, 0.3, 0.3, 0.0)
    zero_base, shifted = _table(np.zeros((5, 8))), _table(np.full((5, 8), 0.25))
    same = compare_paired(zero_base, zero_base)
    assert (same.p, same.verdict, same.difference.low, same.difference.high) == (1.0, "no difference", 0.0, 0.0)
    data = same.to_dict()
    assert all(data[k] == 0 for k in ("mean_diff", "ci_low", "ci_high", "se")) and data["win_rate"] == 0
    shift = compare_paired(zero_base, shifted)
    assert shift.p == 0.0 and shift.verdict == "better" and shift.difference.low == 0.25
    for method in (PRODUCT_BOOTSTRAP, PROMPT_BOOTSTRAP):
        assert compare_paired(zero_base, zero_base, method=method).p == 1.0


def test_unbalanced_table_uses_the_two_way_cluster_robust_variance() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(0, 1, (6, 4)) + rng.normal(0, 1, (1, 4))
    values[1, 2] = values[4, 0] = np.nan  # missing items (e.g. dropped non-finite scores)
    result = estimate(_table(values))
    # by hand: influence u = (y − ȳ)/N summed per prompt and per seed (Cameron, Gelbach & Miller 2011)
    cells = [(p, s, values[p, s]) for p in range(6) for s in range(4) if np.isfinite(values[p, s])]
    mean = np.mean([v for _, _, v in cells])
    u = {(p, s): (v - mean) / len(cells) for p, s, v in cells}
    v_prompt = sum(sum(u[k] for k in u if k[0] == p) ** 2 for p in range(6)) * 6 / 5
    v_seed = sum(sum(u[k] for k in u if k[1] == s) ** 2 for s in range(4)) * 4 / 3
    expected = max(v_prompt + v_seed - sum(x ** 2 for x in u.values()), v_prompt, v_seed)
    assert result.mean == pytest.approx(mean) and result.se ** 2 == pytest.approx(expected)
    assert result.df == 3 and "cluster-robust" in result.variance and result.n_items == 22


def test_one_seed_one_prompt_and_one_item_say_what_they_are_conditional_on() -> None:
    column = np.array([[0.2], [0.5], [0.4], [0.9]])
    one_seed = estimate(_table(column))
    assert "one seed (0)" in one_seed.note and "conditional" in one_seed.note and one_seed.df == 3
    assert one_seed.se == pytest.approx(np.std(column, ddof=1) / 2)
    one_prompt = estimate(_table(column.T.copy()))
    assert "one prompt (00)" in one_prompt.note and one_prompt.df == 3 and "only 4 seeds" in one_prompt.note
    one_item = estimate(_table(np.array([[0.7]])))
    assert (one_item.low, one_item.high) == (0.7, 0.7) and "one item" in one_item.note


def test_nonfinite_scores_are_counted_and_left_out() -> None:
    items = {("a", 0): 1.0, ("a", 1): float("nan"), ("b", 0): 3.0, ("b", 1): 4.0, ("c", 0): float("inf"),
             ("c", 1): float("nan")}
    result = estimate(ItemTable.from_items(items))
    assert result.nonfinite == 3 and result.n_items == 3 and result.n_prompts == 2
    assert result.to_dict()["nonfinite"] == 3
    empty = estimate(ItemTable.from_items({("a", 0): float("nan")})).to_dict()
    assert empty["mean"] is None and empty["ci_low"] is None and empty["nonfinite"] == 1


def test_per_seed_differences_show_the_seed_that_carries_the_effect() -> None:
    base = _table(np.zeros((10, 4)))
    diff = np.zeros((10, 4))
    diff[:, 0] = 1.0  # one seed's noise tensor carries the whole gain
    result = compare_paired(base, _table(diff))
    assert result.difference.per_seed == {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0}
    assert (result.seeds_better, result.seeds_tied, result.seeds_worse) == (1, 3, 0)
    assert (result.wins, result.ties, result.losses) == (10, 0, 0)  # every prompt "wins" ...
    assert result.verdict == "not distinguishable"  # ... yet one seed in four is no evidence
    assert result.to_dict()["per_seed_diff"] == {"0": 1.0, "1": 0.0, "2": 0.0, "3": 0.0}


def test_bootstrap_options_are_seeded_and_recorded() -> None:
    rng = np.random.default_rng(2)
    table = _table(rng.normal(0, 1, (12, 5)))
    for method in (PRODUCT_BOOTSTRAP, PROMPT_BOOTSTRAP):
        first, again, other = (estimate(table, method, seed=s) for s in (11, 11, 12))
        assert first == again and (first.low, first.high) != (other.low, other.high)
        assert first.bootstrap == {"samples": 2000, "seed": 11, "undefined_draws": 0} and first.df is None
    draws = product_bootstrap_means(table.values[None], samples=500, seed=3)[:, 0]
    assert estimate(table, PRODUCT_BOOTSTRAP, samples=500, seed=3).low == percentile_interval(draws)[0]


def test_cli_names_the_estimators_without_importing_scipy() -> None:
    """--interval's choices are the estimators; spelling them out keeps the parser free of numpy/scipy."""
    import subprocess
    import sys

    from imgbench.cli.common import INTERVALS
    from imgbench.crossed import ESTIMATORS

    assert INTERVALS == ESTIMATORS
    code = ("import sys; from imgbench.cli import build_parser; build_parser(); "
            "assert 'scipy' not in sys.modules and 'numpy' not in sys.modules; print('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr
