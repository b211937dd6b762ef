"""One baseline against several runs on one task and scorer: the data behind `imgbench compare`.

Everything is recomputed from per-item scores (never from a run's metrics.json, which may cover
another item set). By default the runs must hold the same (prompt, seed) items; with
`shared=True` the comparison is restricted to the items all runs share, and the result says how
many items each run had to leave out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from imgbench.errors import UserError
from imgbench.paired import check_same_items, compare_paired, describe_items, judge, pair_prompts
from imgbench.selection import ItemScores
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, bootstrap_mean_ci, bootstrap_record, holm


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


def compare_runs(baseline: ItemScores, others: Sequence[ItemScores], shared: bool = False, tie_tolerance: float = 0.0,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Per-run means, paired differences vs the baseline (with Holm across the others), overall and by tag."""
    scores = [baseline, *others]
    _check_same_prompts(scores)
    labels = unique_labels(scores)
    if len(set(labels)) != len(labels):
        raise UserError(f"a run is listed twice: {', '.join(labels)}.")
    maps, items_record = shared_items(scores, labels, shared)
    paired = pair_prompts(maps)
    higher = baseline.higher_is_better
    tags: dict[str, list[int]] = {}
    for index, prompt_id in enumerate(paired.prompt_ids):
        for tag in baseline.tags.get(prompt_id, ()):
            tags.setdefault(tag, []).append(index)

    def block(index: np.ndarray | None) -> dict[str, Any]:
        pick = (lambda x: x) if index is None else (lambda x: x[index])
        base = pick(paired.values[labels[0]])
        runs = {}
        for label in labels:
            values = pick(paired.values[label])
            low, high = bootstrap_mean_ci(values, samples=samples, seed=seed)
            runs[label] = {"mean": float(values.mean()), "ci_low": low, "ci_high": high, "n_prompts": int(values.size)}
        results = [compare_paired(base, pick(paired.values[label]), higher_is_better=higher,
                                  tie_tolerance=tie_tolerance, samples=samples, seed=seed) for label in labels[1:]]
        adjusted = holm([r.p_permutation for r in results])
        comparisons = {}
        for label, result, p_holm in zip(labels[1:], results, adjusted, strict=True):
            entry = result.to_dict()
            entry["p_holm"] = p_holm
            entry["verdict"] = judge(pick(paired.values[label]) - base, p_holm, higher)
            comparisons[label] = entry
        return {"runs": runs, "comparisons": comparisons}

    return {
        "task": baseline.run.task, "scorer": baseline.scorer_key, "higher_is_better": higher,
        "baseline": labels[0], "run_ids": {label: s.run.run_id for label, s in zip(labels, scores, strict=True)},
        "items": {**items_record, "n_compared": paired.n_items, "n_prompts": len(paired.prompt_ids),
                  "nonfinite": paired.nonfinite, "mode": "shared" if shared else "identical"},
        "bootstrap": bootstrap_record(samples, seed), "holm": "over the compared runs, on the permutation p-values",
        "overall": block(None),
        "by_tag": {tag: block(np.array(index)) for tag, index in sorted(tags.items())},
    }
