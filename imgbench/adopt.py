"""Plain generations another run already made: the `base` run adopts them instead of drawing them again.

IMG draws the model's plain image for each (prompt, seed) as its initial image (paper §3) and keeps it as
the item's `initial` artefact, marked `"initial_image": "generated"` in the record. When the `base` run of
the same task, model, size and cache epoch comes later, those bytes are exactly the image it would draw, so
it copies them (recording where from) rather than spending a generation per item: base + IMG costs 2
generations per item in either order (IMG reuses a base run's images the other way round).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.store import ItemKey, RunStore

logger = logging.getLogger(__name__)

#: The record marker of an initial image that the method drew as the model's plain generation.
PLAIN_INITIAL = "generated"


@dataclass(frozen=True)
class Adoptable:
    """One item's plain generation held by another run."""

    run: RunStore
    path: Path


def _same_but_method(identity: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two run identities agree on everything except the method (task, model, size, epoch)."""
    return {**identity, "method": None} == {**other, "method": None}


def plain_generations(run_root: Path, identity: dict[str, Any]) -> dict[ItemKey, Adoptable]:
    """Items whose plain generation sits in a sibling run (other method, same task/model/size/epoch).

    `run_root` is this run's folder (<output>/<task>/<model>/<method>/<run_id>); siblings are the
    other methods' runs under the same model folder. Only trusted records count (images verified).
    """
    found: dict[ItemKey, Adoptable] = {}
    model_folder = run_root.parent.parent
    for manifest in sorted(model_folder.glob("*/*/run.json")):
        if manifest.parent == run_root:
            continue
        try:
            other = json.loads(manifest.read_text(encoding="utf-8")).get("identity")
        except (OSError, ValueError):
            continue
        if not isinstance(other, dict) or not _same_but_method(identity, other):
            continue
        store = RunStore(manifest.parent)
        for key, record in store.load_generations(verify=True).items():
            initial = (record.get("artefacts") or {}).get("initial")
            if key in found or (record.get("info") or {}).get("initial_image") != PLAIN_INITIAL or not initial:
                continue
            path = store.root / initial
            if path.is_file():
                found[key] = Adoptable(run=store, path=path)
    if found:
        logger.info("%d plain generation(s) of this task and model found in other runs; adopted, not redrawn",
                    len(found))
    return found
