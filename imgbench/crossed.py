"""The mean of a prompt × seed table with prompts and seeds as crossed random factors (DESIGN §6).

Every model seeds its generator with the seed alone, so seed s is one noise tensor shared by every
prompt: scores follow Y[p, s] = μ + a_p + b_s + e_ps, and the seeds are a (small) sample of noise
tensors, not replicates. An interval that resamples prompts only is conditional on the seeds drawn
and undercovers μ whenever seed effects matter. The estimators here (docs/statistics.md has the
formulas and the simulation that checks them):

- `two-way` (default): balanced tables use the two-way ANOVA mean squares, Var(ȳ) = σa²/P + σb²/S
  + σe²/(PS) with negative components set to zero, and a t interval with Satterthwaite degrees of
  freedom; unbalanced tables use the two-way cluster-robust variance of Cameron, Gelbach & Miller
  (2011) with min(P, S) − 1 degrees of freedom. One seed (or one prompt) gives a one-way t interval
  whose note says it is conditional on that seed (prompt).
- `product-bootstrap`: Owen's product bootstrap, prompts and seeds resampled independently,
  percentile interval (a little narrow with few seeds: kept for comparison).
- `prompt-bootstrap`: the old cluster bootstrap over prompts with seeds averaged; conditional on
  the seeds, and its note says so.

Every random draw takes an explicit seed that is recorded with the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from imgbench.errors import UserError
from imgbench.stats import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    LEVEL,
    bootstrap_indices,
    finite_or_none,
    percentile_interval,
)

ItemKey = tuple[str, int]
TWO_WAY, PRODUCT_BOOTSTRAP, PROMPT_BOOTSTRAP = "two-way", "product-bootstrap", "prompt-bootstrap"
ESTIMATORS = (TWO_WAY, PRODUCT_BOOTSTRAP, PROMPT_BOOTSTRAP)
RECOMMENDED_SEEDS = 8


def describe(method: str, record: dict | None = None) -> str:
    """One phrase naming the estimator for headers and footnotes, with its draws and seed where it draws."""
    text = {TWO_WAY: "two-way interval (prompts and seeds crossed; t with Satterthwaite df)",
            PRODUCT_BOOTSTRAP: "product-bootstrap interval (prompts and seeds resampled independently)",
            PROMPT_BOOTSTRAP: "prompt-bootstrap interval (seeds averaged per prompt: conditional on the seeds)",
            }[method]
    if record and "samples" in record:
        text += f", {record['samples']} draws, seed {record['seed']}"
    return text


def check_estimator(name: str) -> str:
    if name not in ESTIMATORS:
        raise UserError(f"unknown interval {name!r}; choose one of {', '.join(ESTIMATORS)}.")
    return name


@dataclass(frozen=True)
class ItemTable:
    """Scores laid out as prompts × seeds (both sorted, as every consumer orders them); NaN = no usable score."""

    prompt_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    values: np.ndarray
    bad: np.ndarray
    """Cells whose score was NaN/inf: counted and left out (NaN in `values`), never silently dropped."""

    @classmethod
    def from_items(cls, items: Mapping[ItemKey, float]) -> ItemTable:
        prompt_ids = tuple(sorted({p for p, _ in items}))
        seeds = tuple(sorted({s for _, s in items}))
        row = {p: i for i, p in enumerate(prompt_ids)}
        col = {s: j for j, s in enumerate(seeds)}
        values = np.full((len(prompt_ids), len(seeds)), np.nan)
        bad = np.zeros(values.shape, dtype=bool)
        for (p, s), value in items.items():
            if np.isfinite(value):
                values[row[p], col[s]] = value
            else:
                bad[row[p], col[s]] = True
        return cls(prompt_ids, seeds, values, bad)

    def rows(self, prompt_ids: Iterable[str]) -> ItemTable:
        """The table restricted to some prompts (e.g. one tag's)."""
        wanted = set(prompt_ids)
        keep = [i for i, p in enumerate(self.prompt_ids) if p in wanted]
        return ItemTable(tuple(self.prompt_ids[i] for i in keep), self.seeds, self.values[keep], self.bad[keep])

    def compact(self) -> ItemTable:
        """Without prompts or seeds that have no finite score (they carry no information, only non-finite counts)."""
        mask = np.isfinite(self.values)
        rows, cols = mask.any(axis=1), mask.any(axis=0)
        return ItemTable(tuple(p for p, k in zip(self.prompt_ids, rows, strict=True) if k),
                         tuple(s for s, k in zip(self.seeds, cols, strict=True) if k),
                         self.values[rows][:, cols], self.bad[rows][:, cols])

    @property
    def n_items(self) -> int:
        return int(np.isfinite(self.values).sum())

    @property
    def nonfinite(self) -> int:
        return int(self.bad.sum())


@dataclass(frozen=True)
class CrossedMean:
    """A mean over prompts × seeds with its interval and how it was computed."""

    mean: float
    low: float
    high: float
    se: float
    df: float | None
    """Degrees of freedom of the t interval (None for the bootstrap estimators)."""
    method: str
    variance: str
    """Which variance formula the interval used (e.g. 'ANOVA: prompt + seed + residual, Satterthwaite df')."""
    n_prompts: int
    n_seeds: int
    n_items: int
    nonfinite: int
    per_seed: dict[int, float]
    """Seed → mean over that seed's prompts: shows when one noise tensor carries a result."""
    note: str = ""
    level: float = LEVEL
    bootstrap: dict | None = field(default=None)
    """Draws and seed of a bootstrap estimator; None for `two-way`, which draws nothing."""

    def to_dict(self) -> dict:
        """JSON-ready: undefined numbers (no finite score) become null rather than NaN."""
        return {"mean": finite_or_none(self.mean), "ci_low": finite_or_none(self.low),
                "ci_high": finite_or_none(self.high), "se": finite_or_none(self.se),
                "df": finite_or_none(self.df), "interval": self.method, "variance": self.variance,
                "level": self.level, "n_prompts": self.n_prompts, "n_seeds": self.n_seeds, "n_items": self.n_items,
                "nonfinite": self.nonfinite, "per_seed": {str(s): finite_or_none(v) for s, v in self.per_seed.items()},
                "note": self.note, "bootstrap": self.bootstrap}


# the two-way estimator -------------------------------------------------------------------------
def anova_two_way(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, Var(mean) and Satterthwaite df of balanced tables y[..., P, S] (P, S ≥ 2), vectorised over `...`.

    Var = [max(MS_P − MS_E, 0) + max(MS_S − MS_E, 0) + MS_E] / (PS); the df are computed on the mean
    squares actually used, so a component estimated at zero does not inflate them. The table is shifted
    by its first cell first, so a constant table has exactly zero variance (no rounding noise).
    """
    n_p, n_s = y.shape[-2:]
    shift = y[..., :1, :1]
    y = y - shift
    grand = y.mean(axis=(-2, -1))
    rows = y.mean(axis=-1) - grand[..., None]
    cols = y.mean(axis=-2) - grand[..., None]
    resid = y - grand[..., None, None] - rows[..., :, None] - cols[..., None, :]
    df_p, df_s, df_e = n_p - 1, n_s - 1, (n_p - 1) * (n_s - 1)
    ms_p = n_s * (rows ** 2).sum(axis=-1) / df_p
    ms_s = n_p * (cols ** 2).sum(axis=-1) / df_s
    ms_e = (resid ** 2).sum(axis=(-2, -1)) / df_e
    use_p, use_s = ms_p > ms_e, ms_s > ms_e
    variance = (np.where(use_p, ms_p - ms_e, 0.0) + np.where(use_s, ms_s - ms_e, 0.0) + ms_e) / (n_p * n_s)
    both = use_p & use_s
    denominator = np.where(both, ms_p ** 2 / df_p + ms_s ** 2 / df_s + ms_e ** 2 / df_e, 1.0)
    satterthwaite = (ms_p + ms_s - ms_e) ** 2 / denominator
    df = np.where(both, satterthwaite, np.where(use_p, df_p, np.where(use_s, df_s, df_e)))
    return grand + shift[..., 0, 0], variance, df.astype(float)


def t_interval(mean: np.ndarray, variance: np.ndarray, df: np.ndarray,
               level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    half = sps.t.ppf(0.5 + level / 2, np.maximum(df, 1)) * np.sqrt(variance)
    return mean - half, mean + half


def t_pvalue(mean: np.ndarray, variance: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p of 'the mean is 0'. No spread: p = 1 if the mean is 0, else 0; never NaN."""
    se = np.sqrt(variance)
    t = np.divide(np.abs(mean), se, out=np.where(np.asarray(mean) == 0, 0.0, np.inf), where=se > 0)
    return 2 * sps.t.sf(t, np.maximum(df, 1))


def cluster_robust(table: ItemTable) -> tuple[float, float, float]:
    """Mean, variance and df of the item mean of an unbalanced table (Cameron, Gelbach & Miller 2011).

    V = V_prompt·P/(P−1) + V_seed·S/(S−1) − V_item, with V_g the sum over clusters g of the squared
    summed influence (y − ȳ)/N. V can come out below a one-way term (or negative) when the item term
    is large; it is clamped to at least the larger one-way term, which is positive unless every score
    is equal. df = min(P, S) − 1: the coarser factor limits what is known about the variance.
    """
    rows, cols = np.nonzero(np.isfinite(table.values))
    y = table.values[rows, cols]
    shift = float(y[0])
    u = (y - shift) - (y - shift).mean()
    u = u / y.size
    n_p, n_s = table.values.shape
    v_prompt = n_p / (n_p - 1) * float((np.bincount(rows, u, n_p) ** 2).sum())
    v_seed = n_s / (n_s - 1) * float((np.bincount(cols, u, n_s) ** 2).sum())
    variance = max(v_prompt + v_seed - float((u ** 2).sum()), v_prompt, v_seed)
    return shift + float((y - shift).mean()), variance, float(min(n_p, n_s) - 1)


def one_way(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, Var(mean) and df over one factor's levels (the other fixed)."""
    shift = float(values[0])
    centred = values - shift
    return shift + float(centred.mean()), float(centred.var(ddof=1)) / values.size, float(values.size - 1)


# the bootstrap estimators ----------------------------------------------------------------------
def product_bootstrap_means(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                            seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(samples, R) item means of R tables values[R, P, S] sharing one NaN pattern, prompts and seeds resampled.

    Prompts and seeds are drawn independently with replacement (Owen's product bootstrap) and the same
    draw serves every table, so ranks and differences are paired. A draw is the weighted mean of the
    observed cells (weight = how often its prompt × how often its seed was drawn); a draw that holds no
    observed cell (possible only in sparse unbalanced tables) is NaN.
    """
    n_r, n_p, n_s = values.shape
    rng = np.random.default_rng(seed)
    weights = [np.bincount((rng.integers(0, n, size=(samples, n)) + n * np.arange(samples)[:, None]).ravel(),
                           minlength=samples * n).reshape(samples, n).astype(float) for n in (n_p, n_s)]
    w_prompt, w_seed = weights
    mask = np.isfinite(values[0])
    observed = ((w_prompt @ mask) * w_seed).sum(axis=1)
    filled = np.where(mask, values, 0.0)
    totals = np.stack([((w_prompt @ filled[r]) * w_seed).sum(axis=1) for r in range(n_r)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / observed[:, None]


def bootstrap_pvalue(draws: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p of 'the mean is 0', dual to the percentile interval; never 0 or NaN."""
    if not np.any(draws):
        return 1.0
    tail = min(int(np.sum(draws <= 0)), int(np.sum(draws >= 0)))
    return min(1.0, 2 * (1 + tail) / (1 + draws.size))


# one entry point -------------------------------------------------------------------------------
def _note(table: ItemTable, method: str) -> str:
    n_p, n_s = table.values.shape
    notes = []
    if n_p * n_s == 1:
        notes.append("one item: no interval")
    elif n_s == 1:
        notes.append(f"one seed ({table.seeds[0]}): the interval is conditional on that seed's noise, not a "
                     f"claim about seeds")
    elif n_p == 1:
        notes.append(f"one prompt ({table.prompt_ids[0]}): the interval is conditional on that prompt")
    if 2 <= n_s < RECOMMENDED_SEEDS:
        notes.append(f"only {n_s} seeds: seed effects are poorly estimated; DESIGN recommends ≥ "
                     f"{RECOMMENDED_SEEDS} for a claim")
    if method == PROMPT_BOOTSTRAP and n_s > 1:
        notes.append("prompt bootstrap: conditional on these seeds (seed-to-seed variation is ignored)")
    return "; ".join(notes)


def estimate_with_test(table: ItemTable, method: str = TWO_WAY, level: float = LEVEL,
                       samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[CrossedMean, float]:
    """The mean with its interval, and the two-sided p of 'the mean is 0' from the same estimator."""
    check_estimator(method)
    whole = table.compact()
    values = whole.values
    n_p, n_s = values.shape
    mask = np.isfinite(values)
    n_items = int(mask.sum())
    per_seed = {s: float(np.nanmean(values[:, j])) for j, s in enumerate(whole.seeds)}
    common = dict(method=method, n_prompts=n_p, n_seeds=n_s, n_items=n_items, nonfinite=table.nonfinite,
                  per_seed=per_seed, note=_note(whole, method) if n_items else "no finite score", level=level)
    if n_items == 0:
        nan = float("nan")
        return CrossedMean(mean=nan, low=nan, high=nan, se=nan, df=None, variance="none", **common), 1.0
    if method == TWO_WAY:
        if n_items == 1:
            mean, var, df, how = float(values[mask][0]), 0.0, 0.0, "one item"
        elif n_s == 1 or n_p == 1:
            mean, var, df = one_way(values[mask])
            how = f"one-way over {'prompts' if n_s == 1 else 'seeds'}, t with {int(df)} df"
        elif mask.all():
            mean, var, df = (float(x) for x in anova_two_way(values))
            how = "two-way ANOVA (prompt + seed + residual), t with Satterthwaite df"
        else:
            mean, var, df = cluster_robust(whole)
            how = "two-way cluster-robust (unbalanced table), t with min(P, S) − 1 df"
        low, high = (float(x) for x in t_interval(mean, var, df, level))
        p = float(t_pvalue(mean, var, df)) if df > 0 else 1.0
        return CrossedMean(mean=mean, low=low, high=high, se=var ** 0.5, df=df, variance=how, **common), p
    if method == PRODUCT_BOOTSTRAP:
        mean = float(values[mask].mean())
        draws = product_bootstrap_means(values[None], samples, seed)[:, 0]
        how = "percentile, prompts and seeds resampled independently"
    else:
        prompt_means = np.nanmean(values, axis=1)
        mean = float(prompt_means.mean())
        draws = prompt_means[bootstrap_indices(n_p, samples, seed)].mean(axis=1)
        how = "percentile, prompts resampled (seeds averaged per prompt)"
    defined = draws[np.isfinite(draws)]
    low, high = percentile_interval(defined, level)
    record = {"samples": samples, "seed": seed, "undefined_draws": int(draws.size - defined.size)}
    return CrossedMean(mean=mean, low=low, high=high, se=float(defined.std(ddof=1)), df=None, variance=how,
                       bootstrap=record, **common), bootstrap_pvalue(defined)


def estimate(table: ItemTable, method: str = TWO_WAY, level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES,
             seed: int = BOOTSTRAP_SEED) -> CrossedMean:
    """The mean of a run's table with its interval (see the module docstring for the estimators)."""
    return estimate_with_test(table, method, level, samples, seed)[0]
