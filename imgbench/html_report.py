"""The static HTML report: the leaderboard, the comparisons against baseline rows (with Δ per seed),
then per prompt each run's images side by side.

One self-contained page (inline CSS, no script, no network) whose images are relative links
into the run folders, so it opens from disk and survives moving the results folder as a whole.
Under each image: its scores and the method's artefacts (e.g. the MLLM's answer, the initial
image), so a leaderboard cell can be drilled down to the pictures behind it.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path
from typing import Any

from imgbench.report import Leaderboard, _num, _rank, comparison_table, comparisons_text, method_text
from imgbench.selection import ItemScores

logger = logging.getLogger(__name__)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
td.best{font-weight:bold;background:#eef7ee}
.reason{color:#a33;font-size:85%}
.ci,.rank{color:#666;font-size:.8em;display:block}
.prompt{border-top:1px solid #ddd;margin-top:1rem;padding-top:.5rem}
.grid td{text-align:center}
.grid td:first-child{text-align:left}
figure{margin:0;display:inline-block;max-width:260px}
figure img{max-width:256px;image-rendering:pixelated;width:128px}
figcaption{font-size:.8em;text-align:left}
.edit{display:flex;align-items:center;gap:.3em;font-size:.8em;text-align:left}
.edit img{width:64px}
pre{white-space:pre-wrap;max-width:256px;font-size:.75em;background:#f6f6f6;text-align:left}
.tag{background:#eef;border-radius:3px;padding:0 .3em;margin-right:.3em;font-size:.8em}
.comparisons{font-size:.9em}
.comparisons td:nth-child(-n+2){white-space:nowrap}
.comparisons td.per-seed{min-width:12.5em}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _leaderboard_table(board: Leaderboard) -> str:
    head = "".join(f"<th>{_esc(c.title)}<span class='ci'>{c.n_prompts} prompts × {c.n_seeds} seeds, {c.n_items} "
                   f"items</span></th>" for c in board.columns)
    body = []
    for row in board.rows:
        cells = [f"<td>{_esc(row)}</td>"]
        for j, column in enumerate(board.columns):
            cell = board.cells.get((row, j))
            if cell is None:
                cells.append("<td>–</td>")
                continue
            attrs = (f"data-row='{_esc(row)}' data-task='{_esc(column.task)}' data-scorer='{_esc(column.scorer_key)}' "
                     f"data-mean='{cell.mean!r}' data-run-id='{_esc(cell.run_id)}'")
            cells.append(f"<td class='cell{' best' if cell.best else ''}' {attrs}>{_num(cell.mean)}"
                         f"<span class='ci'>[{_num(cell.ci_low)}, {_num(cell.ci_high)}]</span>"
                         f"<span class='rank'>rank {_rank(cell)}</span></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table id='leaderboard'><thead><tr><th>model/method@variant</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _comparisons_section(board: Leaderboard) -> str:
    """One table per column that has comparisons; empty when no row has a baseline."""
    compared = sorted({c.column for c in board.comparisons})
    if not compared:
        return ""
    parts = [f"<h2 id='comparisons'>Against baseline rows</h2><p>{_esc(comparisons_text(board))}</p>"]
    for j in compared:
        header, rows = comparison_table(board, j)
        head = "".join(f"<th>{_esc(h)}</th>" for h in header)
        per_seed = next(i for i, h in enumerate(header) if h.startswith("Δ per seed"))
        body = "".join("<tr class='comparison'>" + "".join(
            f"<td class='per-seed'>{_esc(v)}</td>" if i == per_seed else f"<td>{_esc(v)}</td>"
            for i, v in enumerate(row)) + "</tr>" for row in rows)
        parts.append(f"<h3>{_esc(board.columns[j].title)}</h3><table class='comparisons'><thead><tr>{head}</tr>"
                     f"</thead><tbody>{body}</tbody></table>")
    return "".join(parts)


def _prompt_texts(task: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    from imgbench import catalog
    from imgbench.suites.fetch import DataUnavailable
    from imgbench.task import load_task

    if task not in catalog.tasks():
        logger.warning("task %r is not registered here; the report shows prompt ids without their text", task)
        return {}
    try:
        prompts = load_task(catalog.tasks().get(task).spec).prompts
    except DataUnavailable as exc:  # the numbers do not need the texts; say what is missing and how to get it
        logger.warning("the HTML report shows prompt ids without their text: %s", exc)
        return {}
    return {p.id: (p.text, p.tags) for p in prompts}


def _edit_strip(run_root: Path, out_dir: Path, artefacts: dict[str, str]) -> tuple[str, set[str]]:
    """For an editing method (an `initial` image and an `instruction`): the initial image and the instruction,
    shown before the edited image, and the artefact names it used."""
    initial, said = artefacts.get("initial", ""), artefacts.get("instruction", "")
    if not initial.endswith(".png") or not said or not (run_root / said).exists():
        return "", set()
    value = json.loads((run_root / said).read_text(encoding="utf-8"))
    text = value.get("instruction") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return "", set()
    src = _esc(os.path.relpath(run_root / initial, out_dir))
    return (f"<div class='edit'><img alt='initial image' src='{src}'><span class='instruction'>“{_esc(text)}” →"
            f"</span></div>", {"initial", "instruction"})


def _artefact_html(run_root: Path, out_dir: Path, artefacts: dict[str, str], shown: set[str] = frozenset()) -> str:
    parts = []
    for name, rel in sorted(artefacts.items()):
        if name in shown:
            continue
        path = run_root / rel
        if rel.endswith(".png"):
            parts.append(f"<div>{_esc(name)}:<br><img class='artefact' alt='{_esc(name)}' "
                         f"src='{_esc(os.path.relpath(path, out_dir))}'></div>")
        elif path.exists():
            text = json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=1, ensure_ascii=False)
            parts.append(f"<details><summary>{_esc(name)}</summary><pre>{_esc(text[:2000])}</pre></details>")
    return "".join(parts)


def _reason(detail: dict[str, Any] | None) -> str:
    """A scorer's verdict in words, shown under the score (GenEval and the shapes checker give `reason`)."""
    if not detail:
        return ""
    reason = detail.get("reason")
    return "" if reason in (None, "", "ok") else str(reason)[:300]


def sample_prompts(prompt_ids: list[str], per_run: dict[str, dict[int, ItemScores]],
                   texts: dict[str, tuple[str, tuple[str, ...]]], limit: int) -> list[str]:
    """Up to `limit` prompts spread over tags and outcomes, in task order within the result.

    The first N prompts of a suite are often one easy category (the shapes test starts with 80 single-
    and two-object prompts, all correct), which hides exactly what a reader opens the page for. So tags
    take turns, and within a tag the lowest-scoring prompts (mean over runs, seeds and scorers, each
    oriented so lower is worse) alternate with the highest.
    """
    if len(prompt_ids) <= limit:
        return prompt_ids
    score: dict[str, list[float]] = {}
    for runs in per_run.values():
        for scores in runs.values():
            sign = 1.0 if scores.higher_is_better else -1.0
            for (prompt_id, _), value in scores.values.items():
                if value == value:  # NaN never ranks
                    score.setdefault(prompt_id, []).append(sign * value)
    groups: dict[str, list[str]] = {}
    for prompt_id in prompt_ids:
        tags = texts.get(prompt_id, ("", ()))[1]
        groups.setdefault(tags[0] if tags else "", []).append(prompt_id)
    queues = []
    for members in groups.values():
        ranked = sorted(members, key=lambda p: sum(score.get(p, [0.0])) / len(score.get(p, [0.0])))
        order = [ranked[i // 2] if i % 2 == 0 else ranked[-1 - i // 2] for i in range(len(ranked))]
        queues.append(list(dict.fromkeys(order)))
    chosen: list[str] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    position = {p: i for i, p in enumerate(prompt_ids)}
    return sorted(chosen, key=position.__getitem__)


def _task_section(task: str, board: Leaderboard, out_dir: Path, max_prompts: int) -> str:
    columns = [j for j, c in enumerate(board.columns) if c.task == task]
    per_run: dict[str, dict[int, ItemScores]] = {}
    for (row, j), scores in board.scores.items():
        if j in columns:
            per_run.setdefault(row, {})[j] = scores
    texts = _prompt_texts(task)
    keys = sorted({k for runs in per_run.values() for s in runs.values() for k in s.values})
    prompt_ids = [p for p in texts if any(k[0] == p for k in keys)] or sorted({k[0] for k in keys})
    seeds = sorted({k[1] for k in keys})
    shown = sample_prompts(prompt_ids, per_run, texts, max_prompts)
    out = [f"<h2 id='task-{_esc(task)}'>Task {_esc(task)}</h2>"]
    if len(prompt_ids) > len(shown):
        out.append(f"<p>Showing {len(shown)} of {len(prompt_ids)} prompts (--html-prompts), taken in turn from "
                   f"every tag, each tag's lowest-scoring prompts first, then its highest.</p>")
    for prompt_id in shown:
        text, tags = texts.get(prompt_id, (f"(prompt {prompt_id})", ()))
        tag_html = "".join(f"<span class='tag'>{_esc(t)}</span>" for t in tags)
        rows = []
        for row in sorted(per_run):
            runs = per_run[row]
            any_scores = next(iter(runs.values()))
            cells = [f"<td>{_esc(row)}</td>"]
            for seed in seeds:
                record = any_scores.generations.get((prompt_id, seed))
                if record is None:
                    cells.append("<td>–</td>")
                    continue
                run_root = any_scores.run.root
                image = os.path.relpath(any_scores.run.store.resolve_image(record["image"]), out_dir)
                lines = []
                for j, s in runs.items():
                    value = s.values.get((prompt_id, seed))
                    detail = s.details.get((prompt_id, seed))
                    shown_value = "–" if value is None else _num(value)
                    title = f" title='{_esc(json.dumps(detail, ensure_ascii=False))}'" if detail else ""
                    reason = _reason(detail)
                    lines.append(f"<div class='score'{title}>{_esc(board.columns[j].scorer)}: {shown_value}"
                                 + (f"<div class='reason'>{_esc(reason)}</div>" if reason else "") + "</div>")
                strip, shown = _edit_strip(run_root, out_dir, record.get("artefacts", {}))
                artefacts = _artefact_html(run_root, out_dir, record.get("artefacts", {}), shown)
                cells.append(f"<td><figure>{strip}<img alt='{_esc(row)} seed {seed}' src='{_esc(image)}'>"
                             f"<figcaption>{''.join(lines)}{artefacts}</figcaption></figure></td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        seed_head = "".join(f"<th>seed {s}</th>" for s in seeds)
        out.append(f"<section class='prompt' data-prompt-id='{_esc(prompt_id)}'><h3>{_esc(prompt_id)}: "
                   f"{_esc(text)}</h3>{tag_html}<table class='grid'><thead><tr><th>run</th>{seed_head}</tr></thead>"
                   f"<tbody>{''.join(rows)}</tbody></table></section>")
    return "".join(out)


def render_html(board: Leaderboard, out_dir: Path, max_prompts: int = 50) -> str:
    notes = "".join(f"<li>{_esc(n)}</li>" for n in board.notes)
    tasks = list(dict.fromkeys(c.task for c in board.columns))
    sections = "".join(_task_section(task, board, out_dir, max_prompts) for task in tasks)
    nav = " · ".join(f"<a href='#task-{_esc(t)}'>{_esc(t)}</a>" for t in tasks)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>imgbench report</title>"
            f"<style>{STYLE}</style></head><body><h1>imgbench report</h1><p>{_esc(method_text(board))}</p>"
            f"<h2>Leaderboard</h2>{_leaderboard_table(board)}<ul class='notes'>{notes}</ul>"
            f"{_comparisons_section(board)}"
            f"<p>Per-prompt images: {nav}</p>{sections}</body></html>\n")
