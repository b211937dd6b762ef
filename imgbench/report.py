"""Leaderboards: tables as data, then renderers (HELM style) for Markdown, CSV, JSON and LaTeX.

Rows are (model, method, variant); columns are (task, scorer). Each column is recomputed from
per-item scores over the (prompt, seed) items that all its runs share (DESIGN §5) — never from
a metrics.json computed over another item set — and says how many items that is. Cells hold the
prompt-level mean, its percentile cluster-bootstrap CI and a bootstrap rank interval; the best
mean per column is marked.
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

from imgbench.comparison import unique_labels
from imgbench.errors import UserError
from imgbench.paired import describe_items, pair_prompts
from imgbench.selection import ItemScores, RunInfo, load_scores
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, bootstrap_mean_ci, bootstrap_record, rank_intervals

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    mean: float
    ci_low: float
    ci_high: float
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
    left_out: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.task} · {self.scorer} {'↑' if self.higher_is_better else '↓'}"


@dataclass
class Leaderboard:
    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, int], Cell]
    bootstrap: dict[str, Any]
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


def build_leaderboard(runs: Sequence[RunInfo], scorers: Sequence[str] | None = None,
                      samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> Leaderboard:
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
    board = Leaderboard(rows=[], columns=[], cells={}, bootstrap=bootstrap_record(samples, seed))
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
        paired = pair_prompts({label: {k: s.values[k] for k in common} for label, s in zip(labels, loaded,
                                                                                           strict=True)})
        column = Column(task=task, scorer=_scorer_title(task, key, list(groups)), scorer_key=key,
                        higher_is_better=loaded[0].higher_is_better, n_items=paired.n_items,
                        n_prompts=len(paired.prompt_ids),
                        left_out={label: len(s.values) - len(common) for label, s in zip(labels, loaded, strict=True)},
                        nonfinite=paired.nonfinite)
        for label, s in zip(labels, loaded, strict=True):
            if column.left_out[label]:
                board.notes.append(f"{column.title}: {label} has {column.left_out[label]} item(s) other runs lack, "
                                   f"left out ({describe_items(sorted(set(s.values) - common), 3)}).")
            if column.nonfinite[label]:
                board.notes.append(f"{column.title}: {label} has {column.nonfinite[label]} non-finite score(s); "
                                   f"those items are left out of every row of the column.")
        matrix = np.column_stack([paired.values[label] for label in labels])
        ranks, intervals = rank_intervals(matrix, column.higher_is_better, samples, seed)
        means = matrix.mean(axis=0)
        best = means.max() if column.higher_is_better else means.min()
        index = len(board.columns)
        board.columns.append(column)
        for j, (label, s) in enumerate(zip(labels, loaded, strict=True)):
            low, high = bootstrap_mean_ci(matrix[:, j], samples=samples, seed=seed)
            board.cells[(label, index)] = Cell(mean=float(means[j]), ci_low=low, ci_high=high, rank=ranks[j],
                                               rank_low=intervals[j][0], rank_high=intervals[j][1],
                                               best=bool(means[j] == best), run_id=s.run.run_id)
            board.scores[(label, index)] = s
            row_order.setdefault(label, None)
    if not board.columns:
        raise UserError("no column could be computed: " + " ".join(board.notes))
    board.rows = sorted(row_order)
    return board


# renderers ---------------------------------------------------------------------------------
def _num(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.1f}"


def _rank(cell: Cell) -> str:
    return f"{cell.rank_low}" if cell.rank_low == cell.rank_high else f"{cell.rank_low}–{cell.rank_high}"


def to_markdown(board: Leaderboard) -> str:
    header = ["model/method@variant", *(f"{c.title} ({c.n_prompts} prompts, {c.n_items} items)"
                                         for c in board.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board.rows:
        cells = []
        for j in range(len(board.columns)):
            cell = board.cells.get((row, j))
            if cell is None:
                cells.append("–")
                continue
            text = f"{_num(cell.mean)} [{_num(cell.ci_low)}, {_num(cell.ci_high)}] (rank {_rank(cell)})"
            cells.append(f"**{text}**" if cell.best else text)
        lines.append("| " + " | ".join([row, *cells]) + " |")
    lines += ["", f"Mean over prompts (seeds averaged) with a {board.bootstrap['interval']} cluster-bootstrap "
                  f"{int(board.bootstrap['level'] * 100)}% CI ({board.bootstrap['samples']} draws, seed "
                  f"{board.bootstrap['seed']}); rank = {int(board.bootstrap['level'] * 100)}% bootstrap rank "
                  f"interval; best per column in bold; each column over the items all its runs share."]
    lines += [f"- {note}" for note in board.notes]
    return "\n".join(lines) + "\n"


def records(board: Leaderboard) -> list[dict[str, Any]]:
    """One flat record per cell: the CSV rows and the JSON `cells`."""
    out = []
    for (row, j), cell in sorted(board.cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        column = board.columns[j]
        out.append({"row": row, "task": column.task, "scorer": column.scorer, "scorer_key": column.scorer_key,
                    "higher_is_better": column.higher_is_better, **asdict(cell), "n_prompts": column.n_prompts,
                    "n_items": column.n_items})
    return out


def to_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    rows = records(board)
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(board: Leaderboard) -> str:
    return json.dumps({"schema_version": 1, "rows": board.rows, "columns": [asdict(c) for c in board.columns],
                       "cells": records(board), "bootstrap": board.bootstrap, "notes": board.notes},
                      indent=2, sort_keys=True) + "\n"


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
