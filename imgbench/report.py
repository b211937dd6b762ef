"""Leaderboards: tables as data, then renderers (HELM style) for Markdown, CSV, JSON and LaTeX.

Rows are (model, method, variant); columns are (task, scorer). Each column is recomputed from
per-item scores over the (prompt, seed) items that all its runs share (DESIGN §5) — never from
a metrics.json computed over another item set — and says how many items that is. Cells hold the
mean over prompts × seeds with the interval of `imgbench.crossed` (two-way by default, as in
`compare` and metrics.json) and a rank interval from the product bootstrap (prompts and seeds
resampled jointly for all rows); a row is marked best only when its rank interval is 1–1 (first in
95% of the draws). Rows are also compared with a baseline row (the model's `base` row by default): Δ
with its interval, Holm-adjusted p and Δ per seed, so a reader sees when one seed carries a difference.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from imgbench.comparison import interval_record, unique_labels
from imgbench.crossed import PRODUCT_BOOTSTRAP, TWO_WAY, ItemTable, describe, estimate, product_bootstrap_means
from imgbench.errors import UserError
from imgbench.paired import (
    PairedResult,
    compare_paired,
    describe_items,
    format_p,
    format_signed,
    holm_adjust,
    pair_tables,
)
from imgbench.provenance import leaks
from imgbench.selection import ItemScores, RunInfo, load_scores, select_run
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, LEVEL, rank_intervals

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    mean: float
    ci_low: float
    ci_high: float
    df: float | None
    rank: int
    rank_low: int
    rank_high: int
    best: bool
    run_id: str


@dataclass
class Column:
    task: str
    scorer: str
    scorer_key: str
    higher_is_better: bool
    n_items: int
    n_prompts: int
    n_seeds: int
    seeds: list[int] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.task} · {self.scorer} {'↑' if self.higher_is_better else '↓'}"


@dataclass(frozen=True)
class RowComparison:
    """One row against its baseline row within one column."""

    column: int
    row: str
    baseline: str
    result: PairedResult


@dataclass
class Leaderboard:
    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, int], Cell]
    interval: dict[str, Any]
    ranks: dict[str, Any]
    comparisons: list[RowComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scores: dict[tuple[str, int], ItemScores] = field(default_factory=dict, repr=False)
    """The per-item scores behind each cell (for the HTML report); not serialised."""


def _column_groups(runs: Sequence[RunInfo]) -> dict[tuple[str, str], list[RunInfo]]:
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for run in runs:
        for key in run.store.scorer_keys():
            groups.setdefault((run.task, key), []).append(run)
    return groups


def _scorer_title(task: str, key: str, keys: Sequence[tuple[str, str]]) -> str:
    """The scorer's name, or its full key where two versions of it are on one task."""
    name = key.split("@")[0]
    same = [k for t, k in keys if t == task and k.split("@")[0] == name]
    return name if len(same) == 1 else key


def baseline_pairs(labels: Sequence[str], runs: Sequence[RunInfo], selector: str | None) -> list[tuple[str, str]]:
    """(row, baseline row) pairs: every row against the selected run, or by default each model's rows
    against that model's `base` row where exactly one exists (none → no comparison for that model)."""
    if selector:
        base = labels[runs.index(select_run(runs, selector))]
        return [(label, base) for label in labels if label != base]
    pairs = []
    for label, run in zip(labels, runs, strict=True):
        bases = [b for b, r in zip(labels, runs, strict=True) if r.model == run.model and r.method == "base"]
        if run.method != "base" and len(bases) == 1:
            pairs.append((label, bases[0]))
    return pairs


def _comparisons(board: Leaderboard, index: int, tables: dict[str, ItemTable], runs: Sequence[RunInfo],
                 selector: str | None, samples: int, seed: int) -> None:
    column = board.columns[index]
    try:
        pairs = baseline_pairs(list(tables), runs, selector)
    except UserError as exc:
        board.notes.append(f"{column.title}: no comparison ({exc})")
        return
    results = holm_adjust([compare_paired(tables[base], tables[row], column.higher_is_better,
                                          method=board.interval["method"], samples=samples, seed=seed)
                           for row, base in pairs])
    board.comparisons += [RowComparison(index, row, base, result)
                          for (row, base), result in zip(pairs, results, strict=True)]


def build_leaderboard(runs: Sequence[RunInfo], scorers: Sequence[str] | None = None, interval: str = TWO_WAY,
                      samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                      baseline: str | None = None) -> Leaderboard:
    groups = _column_groups(runs)
    if scorers:
        known = {k.split("@")[0] for _, k in groups} | {k for _, k in groups}
        for name in scorers:
            if name not in known:
                raise UserError(f"no run has scores from scorer {name!r}; scorers found: "
                                f"{', '.join(sorted(known)) or '(none)'}.")
        groups = {tk: r for tk, r in groups.items() if tk[1] in scorers or tk[1].split("@")[0] in scorers}
    if not groups:
        raise UserError("none of the runs has scores; score them with `imgbench score --run RUN --scorer NAME`.")
    board = Leaderboard(rows=[], columns=[], cells={}, interval=interval_record(interval, samples, seed),
                        ranks={"method": PRODUCT_BOOTSTRAP, "level": LEVEL, "samples": samples, "seed": seed})
    row_order: dict[str, None] = {}
    for (task, key), members in sorted(groups.items()):
        loaded = []
        for run in members:
            try:
                loaded.append(load_scores(run, key))
            except UserError as exc:
                board.notes.append(f"{task} · {key}: {run.label} left out: {exc}")
        if not loaded:
            continue
        labels = unique_labels(loaded)
        common = set.intersection(*(set(s.values) for s in loaded))
        if not common:
            board.notes.append(f"{task} · {key}: the runs share no item ({', '.join(labels)}); column skipped.")
            continue
        paired = pair_tables({label: {k: s.values[k] for k in common} for label, s in zip(labels, loaded,
                                                                                          strict=True)})
        estimates = {label: estimate(table, interval, samples=samples, seed=seed)
                     for label, table in paired.tables.items()}
        first = estimates[labels[0]]
        column = Column(task=task, scorer=_scorer_title(task, key, list(groups)), scorer_key=key,
                        higher_is_better=loaded[0].higher_is_better, n_items=paired.n_items,
                        n_prompts=first.n_prompts, n_seeds=first.n_seeds, seeds=list(first.per_seed),
                        left_out={label: len(s.values) - len(common) for label, s in zip(labels, loaded, strict=True)},
                        nonfinite=paired.nonfinite)
        for label, s in zip(labels, loaded, strict=True):
            if column.left_out[label]:
                board.notes.append(f"{column.title}: {label} has {column.left_out[label]} item(s) other runs lack, "
                                   f"left out ({describe_items(sorted(set(s.values) - common), 3)}).")
            if column.nonfinite[label]:
                board.notes.append(f"{column.title}: {label} has {column.nonfinite[label]} non-finite score(s); "
                                   f"those items are left out of every row of the column.")
        if first.note:
            board.notes.append(f"{column.title}: {first.note}.")
        for label, s in zip(labels, loaded, strict=True):
            board.notes += [f"{column.title}: {label}: {line}." for line in leaks(s.run.manifest.get("parts", []),
                                                                                   column.seeds)]
        means = np.array([estimates[label].mean for label in labels])
        draws = product_bootstrap_means(np.stack([paired.tables[label].compact().values for label in labels]),
                                        samples, seed)
        ranks, intervals = rank_intervals(means, draws, column.higher_is_better)
        best = means.max() if column.higher_is_better else means.min()
        index = len(board.columns)
        board.columns.append(column)
        for j, (label, s) in enumerate(zip(labels, loaded, strict=True)):
            e = estimates[label]
            board.cells[(label, index)] = Cell(mean=e.mean, ci_low=e.low, ci_high=e.high, df=e.df, rank=ranks[j],
                                               rank_low=intervals[j][0], rank_high=intervals[j][1],
                                               best=bool(means[j] == best and intervals[j] == (1, 1)),
                                               run_id=s.run.run_id)
            board.scores[(label, index)] = s
            row_order.setdefault(label, None)
        _comparisons(board, index, paired.tables, [s.run for s in loaded], baseline, samples, seed)
    if not board.columns:
        raise UserError("no column could be computed: " + " ".join(board.notes))
    if baseline and not board.comparisons:
        raise UserError(f"--baseline {baseline} matches no row of any column: " + " ".join(board.notes))
    board.rows = sorted(row_order)
    return board


def method_text(board: Leaderboard) -> str:
    """The footnote under every rendering of the table: what the numbers are, honestly."""
    level = int(board.interval["level"] * 100)
    return (f"Mean over prompts × seeds with a {level}% {describe(board.interval['method'], board.interval)}; "
            f"rank = {level}% rank interval over {board.ranks['samples']} product-bootstrap draws (prompts and seeds "
            f"resampled jointly for all rows, seed {board.ranks['seed']}); in bold only a row first in every rank "
            f"interval (rank 1–1: distinguishable from every other row); each column over "
            f"the items all its runs share.")


# renderers ---------------------------------------------------------------------------------
def _num(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"


def _rank(cell: Cell) -> str:
    return f"{cell.rank_low}" if cell.rank_low == cell.rank_high else f"{cell.rank_low}–{cell.rank_high}"


def comparison_table(board: Leaderboard, index: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one column's comparisons against baseline rows, as text (Markdown and HTML share it)."""
    column = board.columns[index]
    header = ["model/method@variant", "baseline", "Δ [95% CI]", "p (Holm)",
              f"Δ per seed ({' '.join(map(str, column.seeds))})", "seeds w/t/l", "prompts w/t/l", "verdict"]
    rows = []
    for c in (c for c in board.comparisons if c.column == index):
        r, d = c.result, c.result.difference
        rows.append([c.row, c.baseline, f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]",
                     f"{format_p(r.p)} ({format_p(r.p_holm)})", format_signed(d.per_seed.values()),
                     f"{r.seeds_better}/{r.seeds_tied}/{r.seeds_worse}", f"{r.wins}/{r.ties}/{r.losses}", r.verdict])
    return header, rows


def comparisons_text(board: Leaderboard) -> str:
    """The sentence above the comparison tables."""
    return (f"Δ = row − baseline over the column's shared items, with the same interval; p from the "
            f"{board.interval['method']} test, Holm-adjusted over the comparisons of each column; verdict at 0.05 "
            f"on the Holm p; Δ per seed is the mean Δ over prompts for each seed; w/t/l count seeds and prompts "
            f"(seeds averaged) where the row is better / equal / worse.")


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def to_markdown(board: Leaderboard) -> str:
    header = ["model/method@variant", *(f"{c.title} ({c.n_prompts} prompts × {c.n_seeds} seeds, {c.n_items} items)"
                                         for c in board.columns)]
    rows = []
    for row in board.rows:
        cells = []
        for j in range(len(board.columns)):
            cell = board.cells.get((row, j))
            if cell is None:
                cells.append("–")
                continue
            text = f"{_num(cell.mean)} [{_num(cell.ci_low)}, {_num(cell.ci_high)}] (rank {_rank(cell)})"
            cells.append(f"**{text}**" if cell.best else text)
        rows.append([row, *cells])
    lines = [*_markdown_table(header, rows), "", method_text(board)]
    lines += [f"- {note}" for note in board.notes]
    compared = sorted({c.column for c in board.comparisons})
    if compared:
        lines += ["", "## Against baseline rows", "", comparisons_text(board)]
    for j in compared:
        lines += ["", f"### {board.columns[j].title}", "", *_markdown_table(*comparison_table(board, j))]
    return "\n".join(lines) + "\n"


def records(board: Leaderboard) -> list[dict[str, Any]]:
    """One flat record per cell: the CSV rows and the JSON `cells`."""
    out = []
    for (row, j), cell in sorted(board.cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        column = board.columns[j]
        out.append({"row": row, "task": column.task, "scorer": column.scorer, "scorer_key": column.scorer_key,
                    "higher_is_better": column.higher_is_better, **asdict(cell), "n_prompts": column.n_prompts,
                    "n_seeds": column.n_seeds, "n_items": column.n_items})
    return out


def to_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    rows = records(board)
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(board: Leaderboard) -> str:
    comparisons = [{"task": board.columns[c.column].task, "scorer_key": board.columns[c.column].scorer_key,
                    "row": c.row, "baseline": c.baseline, **c.result.to_dict()} for c in board.comparisons]
    return json.dumps({"schema_version": 2, "rows": board.rows, "columns": [asdict(c) for c in board.columns],
                       "cells": records(board), "interval": board.interval, "ranks": board.ranks,
                       "comparisons": comparisons, "notes": board.notes}, indent=2, sort_keys=True) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "↑": r"$\uparrow$",
        "↓": r"$\downarrow$", "·": r"$\cdot$"}


def _tex(text: str) -> str:
    """Escape in one pass, so an escape's own braces are never escaped again."""
    return "".join(_TEX.get(char, char) for char in text)


def to_latex(board: Leaderboard) -> str:
    """A booktabs table: mean with its CI in small type, rank interval; best per column in bold."""
    lines = [r"\begin{tabular}{l" + "c" * len(board.columns) + "}", r"\toprule",
             " & ".join(["Model / method", *(_tex(c.title) for c in board.columns)]) + r" \\", r"\midrule"]
    for row in board.rows:
        cells = []
        for j in range(len(board.columns)):
            cell = board.cells.get((row, j))
            if cell is None:
                cells.append("--")
                continue
            mean = rf"\textbf{{{_num(cell.mean)}}}" if cell.best else _num(cell.mean)
            cells.append(rf"{mean} {{\scriptsize [{_num(cell.ci_low)}, {_num(cell.ci_high)}] "
                         rf"r{_rank(cell).replace('–', '--')}}}")
        lines.append(" & ".join([_tex(row), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
