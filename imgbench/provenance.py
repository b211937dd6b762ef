"""What a method's trained parts saw, and whether a run's items reuse it (DESIGN §8).

A seed is one noise tensor shared by every prompt, so a part (an aligner, a finetuned MLLM, an
editor) trained on drawings made with seed s has seen the layout of every test image made with
seed s. Trainers therefore write the seeds their data used into the part's manifest, as inclusive
ranges under `data.seeds` (with the protocol's `split_version`); a method lists its parts with
`Method.parts()`; the runner stores that list in `run.json` (it follows from the parts' digests,
which the identity already holds); and `run`, `compare` and `report` name every part whose seeds
overlap the seeds of the items they show. A part without such a manifest (e.g. a released
checkpoint) is "unknown" and never flagged: its training noise is not ours to know.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SeedRanges = list[list[int]]


def seed_ranges(seeds: Iterable[int]) -> SeedRanges:
    """Sorted seeds folded into inclusive [first, last] runs: 6,088 consecutive seeds stay one line."""
    ranges: SeedRanges = []
    for seed in sorted(set(int(s) for s in seeds)):
        if ranges and seed == ranges[-1][1] + 1:
            ranges[-1][1] = seed
        else:
            ranges.append([seed, seed])
    return ranges


def seeds_in(seeds: Iterable[int], ranges: Sequence[Sequence[int]]) -> list[int]:
    """The seeds that fall inside any of the ranges, sorted."""
    return sorted(s for s in set(seeds) if any(low <= s <= high for low, high in ranges))


def data_record(seeds: Iterable[int], split_version: int, **facts: Any) -> dict[str, Any]:
    """The `data` block a trainer writes into its part's manifest."""
    return {"split_version": split_version, "seeds": seed_ranges(seeds), **facts}


def read_part(name: str, manifest: str | Path | None) -> dict[str, Any]:
    """A part's provenance from its manifest: {name, manifest, seeds, split_version}; seeds None when unknown."""
    record: dict[str, Any] = {"name": name, "manifest": str(manifest) if manifest else None, "seeds": None,
                              "split_version": None}
    if manifest is None or not Path(manifest).is_file():
        return record
    data = json.loads(Path(manifest).read_text()).get("data")
    if isinstance(data, Mapping) and isinstance(data.get("seeds"), list):
        record.update(seeds=[[int(a), int(b)] for a, b in data["seeds"]], split_version=data.get("split_version"))
    return record


def leaks(parts: Sequence[Mapping[str, Any]], item_seeds: Iterable[int]) -> list[str]:
    """One line per part whose training seeds include seeds of these items (empty: nothing leaked)."""
    item_seeds = set(item_seeds)
    lines = []
    for part in parts:
        if part.get("seeds") is None:
            continue
        shared = seeds_in(item_seeds, part["seeds"])
        if shared:
            shown = ", ".join(map(str, shared[:8])) + (" …" if len(shared) > 8 else "")
            lines.append(f"part {part['name']} was trained on data drawn with seed(s) {shown}, which these items "
                         f"use too (same noise, same layouts): the result is not held out")
    return lines
