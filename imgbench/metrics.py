"""metrics.json: per-scorer means with CIs over a named item set, written when the set is complete.

Whichever process completes the last item writes it (atomically); the content depends only on
the per-item scores, so sharded and unsharded runs write identical files. The numbers come from
the same estimator and the same (prompt_id, seed) ordering as `imgbench compare`
(`imgbench.crossed`, two-way), so comparing a run and reading its metrics.json agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgbench.api.records import Prompt
from imgbench.crossed import TWO_WAY, ItemTable, estimate
from imgbench.store import RunStore, decode_value

SCHEMA_VERSION = 2
"""2: two-way (prompt × seed) intervals with df and per-seed means; 1 had prompt-bootstrap intervals."""


def compute_metrics(store: RunStore, items: Sequence[tuple[Prompt, int]], item_set: dict[str, Any],
                    scorer_keys: Sequence[str], primary: str) -> dict[str, Any] | None:
    """Metrics over `items`, or None if any item lacks an image or a score row."""
    generations = store.load_generations(verify=False)
    if any((p.id, s) not in generations for p, s in items):
        return None
    tags: dict[str, set[str]] = {}
    for prompt, _ in items:
        for tag in prompt.tags:
            tags.setdefault(tag, set()).add(prompt.id)
    result: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "item_set": item_set, "primary_scorer": primary,
                              "interval": {"method": TWO_WAY, "factors": "prompt × seed, crossed"}, "scorers": {}}
    for key in scorer_keys:
        rows = store.load_scores(key, generations)
        if any((p.id, s) not in rows for p, s in items):
            return None
        table = ItemTable.from_items({(p.id, s): decode_value(rows[(p.id, s)]) for p, s in items})
        identity = store.read_scorer_meta(key)
        result["scorers"][key] = {"name": key.split("@")[0], "higher_is_better": identity["higher_is_better"],
                                  "overall": estimate(table).to_dict(),
                                  "by_tag": {tag: estimate(table.rows(ids)).to_dict() for tag, ids in
                                             sorted(tags.items())}}
    return result


def write_metrics_if_complete(store: RunStore, items: Sequence[tuple[Prompt, int]], item_set: dict[str, Any],
                              scorer_keys: Sequence[str], primary: str) -> dict[str, Any] | None:
    metrics = compute_metrics(store, items, item_set, scorer_keys, primary)
    if metrics is not None:
        store.write_metrics(metrics)
    return metrics
