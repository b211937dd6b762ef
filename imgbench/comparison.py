"""One baseline against several runs on one task and scorer: the data behind `imgbench compare`.

Everything is recomputed from per-item scores (never from a run's metrics.json, which may cover
another item set). By default the runs must hold the same (prompt, seed) items; with
`shared=True` the comparison is restricted to the items all runs share, and the result says how
many items each run had to leave out. Means and differences use one estimator for every run
(`imgbench.crossed`: two-way by default, prompts and seeds crossed), the same one metrics.json uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgbench.crossed import TWO_WAY, ItemTable, check_estimator, estimate
from imgbench.errors import UserError
from imgbench.paired import check_same_items, compare_paired, describe_items, holm_adjust, pair_tables
from imgbench.provenance import leaks
from imgbench.selection import ItemScores
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, LEVEL


def unique_labels(scores: Sequence[ItemScores]) -> list[str]:
    """Run labels, with the run id appended where two runs share one (e.g. two dtypes of a model)."""
    labels = [s.run.label for s in scores]
    return [f"{label} [{s.run.run_id}]" if labels.count(label) > 1 else label for label, s in zip(labels, scores,
                                                                                                  strict=True)]


def shared_items(scores: Sequence[ItemScores], labels: Sequence[str], shared: bool) -> tuple[dict, dict[str, Any]]:
    """The item maps restricted to the compared set, and a record of what was left out of each run."""
    maps = {label: s.values for label, s in zip(labels, scores, strict=True)}
    if not shared:
        check_same_items(maps)
    common = set.intersection(*(set(m) for m in maps.values()))
    if not common:
        raise UserError("the runs share no (prompt, seed) item: " + "; ".join(f"{k} has {len(m)} items" for k, m
                                                                          in maps.items())
                        + ". Were they made on the same task and seeds?")
    left_out = {label: len(m) - len(common) for label, m in maps.items()}
    record = {"n_shared": len(common), "left_out": left_out,
              "left_out_examples": {label: describe_items(sorted(set(m) - common)) for label, m in maps.items()
                                    if left_out[label]}}
    return {label: {k: m[k] for k in common} for label, m in maps.items()}, record


def _check_same_prompts(scores: Sequence[ItemScores]) -> None:
    """Runs on one task must have been made from the same prompt content, or pairing by id is meaningless."""
    digests = {s.run.manifest.get("identity", {}).get("task", {}).get("content_sha256") for s in scores}
    if len(digests) > 1:
        listing = ", ".join(f"{s.run.label}: {s.run.manifest['identity']['task'].get('content_sha256', '?')[:12]}"
                            for s in scores)
        raise UserError(f"the runs were made from different versions of the task's prompts ({listing}); "
                        f"prompt ids do not name the same prompts. Rerun the older runs on the current task.")


def interval_record(method: str, samples: int, seed: int) -> dict[str, Any]:
    """How the intervals were computed, so a reader can reproduce them (bootstrap draws only where drawn)."""
    record: dict[str, Any] = {"method": method, "level": LEVEL}
    if method != TWO_WAY:
        record.update(samples=samples, seed=seed)
    return record


def compare_tables(tables: dict[str, ItemTable], baseline: str, higher_is_better: bool, tie_tolerance: float = 0.0,
                   interval: str = TWO_WAY, samples: int = BOOTSTRAP_SAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Each run's mean and every other run against `baseline` (Holm across them), over paired tables."""
    runs = {label: estimate(table, interval, samples=samples, seed=seed).to_dict() for label, table in tables.items()}
    others = [label for label in tables if label != baseline]
    results = holm_adjust([compare_paired(tables[baseline], tables[label], higher_is_better, tie_tolerance, interval,
                                          samples, seed) for label in others])
    return {"runs": runs, "comparisons": {label: r.to_dict() for label, r in zip(others, results, strict=True)}}


def compare_runs(baseline: ItemScores, others: Sequence[ItemScores], shared: bool = False, tie_tolerance: float = 0.0,
                 interval: str = TWO_WAY, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Per-run means, paired differences vs the baseline (with Holm across the others), overall and by tag."""
    check_estimator(interval)
    scores = [baseline, *others]
    _check_same_prompts(scores)
    labels = unique_labels(scores)
    if len(set(labels)) != len(labels):
        raise UserError(f"a run is listed twice: {', '.join(labels)}.")
    maps, items_record = shared_items(scores, labels, shared)
    paired = pair_tables(maps)
    first = paired.tables[labels[0]].compact()
    tags: dict[str, list[str]] = {}
    for prompt_id in first.prompt_ids:
        for tag in baseline.tags.get(prompt_id, ()):
            tags.setdefault(tag, []).append(prompt_id)

    def block(tables: dict[str, ItemTable]) -> dict[str, Any]:
        return compare_tables(tables, labels[0], baseline.higher_is_better, tie_tolerance, interval, samples, seed)

    return {
        "task": baseline.run.task, "scorer": baseline.scorer_key, "higher_is_better": baseline.higher_is_better,
        "baseline": labels[0], "run_ids": {label: s.run.run_id for label, s in zip(labels, scores, strict=True)},
        "items": {**items_record, "n_compared": paired.n_items, "n_prompts": len(first.prompt_ids),
                  "n_seeds": len(first.seeds), "nonfinite": paired.nonfinite,
                  "mode": "shared" if shared else "identical"},
        "interval": interval_record(interval, samples, seed),
        "holm": f"over the {len(others)} compared run(s), on the p-values of the {interval} test",
        "leaks": {label: found for label, s in zip(labels, scores, strict=True)
                  if (found := leaks(s.run.manifest.get("parts", []), first.seeds))},
        "overall": block(paired.tables),
        "by_tag": {tag: block(paired.rows(ids)) for tag, ids in sorted(tags.items())},
    }
