"""`imgbench merge RUN`: the metrics of a run whose shards never met (SLURM array tasks, hand-started `--shard`).

Each shard process writes metrics.json itself when it finds the item set complete, so normally the last one to
finish does. Merge is for shards that cannot: array tasks that only generated (then scored in other jobs), a
metrics.json lost or deleted, or the question "which shards still lack items?". It needs no flags: the item set
and the scorers are the ones the shards' own command asked for, read from invocations.jsonl, so the file it
writes is the one that command would have written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from imgbench.api.records import Prompt
from imgbench.errors import UserError
from imgbench.metrics import write_metrics_if_complete
from imgbench.scoring import ScoreOutcome, _task_of_run
from imgbench.store import RunStore, Shard
from imgbench.task import Task
from imgbench.util.hashing import sha256_json

logger = logging.getLogger(__name__)


def last_request(store: RunStore) -> dict[str, Any]:
    """The latest invocation of `run` / `generate` (the ones that name an item set); torn lines are skipped."""
    try:
        lines = (store.root / "invocations.jsonl").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("item_set"), dict):
            return record
    raise UserError(f"{store.root} records no `imgbench run` / `generate` invocation (invocations.jsonl), so "
                    f"there is no item set to merge; score it with `imgbench score --run {store.root}` instead.")


def requested_items(task: Task, item_set: dict[str, Any]) -> list[tuple[Prompt, int]]:
    """The (prompt, seed) items a recorded item set names, checked against its digest."""
    prompts = task.select(tuple(item_set.get("tags") or ()), item_set.get("limit"), item_set.get("offset", 0))
    items = [(p, s) for p in prompts for s in item_set["seeds"]]
    if sha256_json([[p.id, s] for p, s in items]) != item_set.get("items_sha256"):
        raise UserError(f"the items of task {task.spec.name!r} no longer match the ones the run's shards were asked "
                        f"for (invocations.jsonl); rerun the shards' command to make the run complete.")
    return items


def _missing_by_shard(missing: set[tuple[str, int]], count: int) -> str:
    per_shard = [sum(Shard(i, count).owns(key) for key in missing) for i in range(count)]
    return ", ".join(f"shard {i}/{count}: {n}" for i, n in enumerate(per_shard) if n)


def merge_run(run_dir: str | Path) -> ScoreOutcome:
    """Write metrics.json of a complete run from its shards' records; an incomplete run names what is missing."""
    store = RunStore(run_dir)
    task = _task_of_run(store.read_manifest())
    request = last_request(store)
    items = requested_items(task, request["item_set"])
    keys = request.get("scorers") or store.scorer_keys()
    if not keys:
        raise UserError(f"{store.root} has no scores yet: score it with `imgbench score --run {store.root}` "
                        f"(under the launcher, or as array tasks with --shard), then merge.")
    generations = store.load_generations(verify=False)
    missing = {(p.id, s) for p, s in items if (p.id, s) not in generations}
    for key in keys:
        rows = store.load_scores(key, generations)
        missing |= {(p.id, s) for p, s in items if (p.id, s) not in rows}
    if missing:
        count = int(str(request.get("shard", "0/1")).split("/")[1])
        raise UserError(f"{len(missing)} of {len(items)} items of {store.root} lack an image or a score row "
                        f"({_missing_by_shard(missing, count) if count > 1 else 'one process'}). Rerun "
                        f"those shards' command (it does exactly the missing items), then merge again.")
    names = [key.split("@")[0] for key in keys]
    primary = task.spec.primary_scorer if task.spec.primary_scorer in names else names[0]
    metrics = write_metrics_if_complete(store, items, request["item_set"], keys, primary)
    assert metrics is not None, "every item was checked above"
    return ScoreOutcome(store=store, task=task, items=items, scored={}, metrics=metrics)
