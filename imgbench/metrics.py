"""metrics.json: per-scorer means with CIs over a named item set, written when the set is complete.

Whichever process completes the last item writes it (atomically); the content depends only on
the per-item scores, so sharded and unsharded runs write identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgbench.api.records import Prompt
from imgbench.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, summarise
from imgbench.store import RunStore, decode_value


def compute_metrics(store: RunStore, items: Sequence[tuple[Prompt, int]], item_set: dict[str, Any],
                    scorer_keys: Sequence[str], primary: str) -> dict[str, Any] | None:
    """Metrics over `items`, or None if any item lacks an image or a score row."""
    generations = store.load_generations(verify=False)
    if any((p.id, s) not in generations for p, s in items):
        return None
    result: dict[str, Any] = {"schema_version": 1, "item_set": item_set, "primary_scorer": primary,
                              "bootstrap": {"interval": "percentile", "unit": "prompt", "samples": BOOTSTRAP_SAMPLES,
                                            "seed": BOOTSTRAP_SEED}, "scorers": {}}
    for key in scorer_keys:
        rows = store.load_scores(key, generations)
        if any((p.id, s) not in rows for p, s in items):
            return None
        values = [decode_value(rows[(p.id, s)]) for p, s in items]
        ids = [p.id for p, _ in items]
        identity = store.read_scorer_meta(key)
        by_tag = {}
        for tag in sorted({t for p, _ in items for t in p.tags}):
            chosen = [i for i, (p, _) in enumerate(items) if tag in p.tags]
            by_tag[tag] = summarise([ids[i] for i in chosen], [values[i] for i in chosen]).to_dict()
        result["scorers"][key] = {"name": key.split("@")[0], "higher_is_better": identity["higher_is_better"],
                                  "overall": summarise(ids, values).to_dict(), "by_tag": by_tag}
    return result


def write_metrics_if_complete(store: RunStore, items: Sequence[tuple[Prompt, int]], item_set: dict[str, Any],
                              scorer_keys: Sequence[str], primary: str) -> dict[str, Any] | None:
    metrics = compute_metrics(store, items, item_set, scorer_keys, primary)
    if metrics is not None:
        store.write_metrics(metrics)
    return metrics
