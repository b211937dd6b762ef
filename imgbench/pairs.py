"""Preference pairs (prompt, winner, loser): from imgbench runs ranked by a scorer, or Pick-a-Pic v2.

IMG's aligner (and any DPO-style trainer) learns from pairs. `pairs_from_run` turns a run with
several seeds per prompt into pairs by a scorer's values (its direction read from the scorer's
identity file), so any model and any scorer can make training data. `read_pickapic` reads the
Pick-a-Pic v2 parquet schema (`caption`, `jpg_0`, `jpg_1`, `label_0`: 1 → image 0 preferred,
0 → image 1, 0.5 → tie, dropped as in Diffusion-DPO and IMG). Torch-free.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.store import RunStore, decode_value
from imgbench.util.io import read_jsonl

logger = logging.getLogger(__name__)

MODES = ("best-worst", "all")
PICKAPIC_COLUMNS = ("caption", "jpg_0", "jpg_1", "label_0")


@dataclass(frozen=True)
class Pair:
    """One preference pair. Images are file paths or encoded bytes (decoded on demand)."""

    id: str
    prompt: str
    winner: str | bytes
    loser: str | bytes
    info: dict[str, Any]

    def images(self) -> tuple[Any, Any]:
        from PIL import Image

        def load(source: str | bytes) -> Any:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                return image.convert("RGB")

        return load(self.winner), load(self.loser)


def _scorer_key(store: RunStore, scorer: str) -> str:
    keys = store.scorer_keys()
    matches = [k for k in keys if k == scorer or k.split("@")[0] == scorer]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"run {store.root} has no scores from {scorer!r}; scored: {', '.join(keys) or 'none'}. "
                        f"Score it first: `imgbench score --run {store.root} --scorer {scorer}`.")
    raise UserError(f"run {store.root} has several {scorer!r} score sets ({', '.join(matches)}); give the full key.")


def pairs_from_run(run_dir: str | Path, scorer: str, mode: str = "best-worst", min_margin: float = 0.0) -> list[Pair]:
    """Pairs from a run: per prompt, seeds ranked by the scorer; 'best-worst' gives one pair (top vs
    bottom), 'all' every pair whose values differ by more than `min_margin`. Ties never make a pair."""
    from imgbench.scoring import _task_of_run

    if mode not in MODES:
        raise UserError(f"pair mode must be one of {', '.join(MODES)}; got {mode!r}.")
    if not math.isfinite(min_margin) or min_margin < 0:
        raise UserError(f"--min-margin is the smallest score difference that makes a pair (0 or more), got "
                        f"{min_margin}; e.g. --min-margin 0.1.")
    store = RunStore(run_dir)
    manifest = store.read_manifest()
    key = _scorer_key(store, scorer)
    meta = store.read_scorer_meta(key)
    sign = 1.0 if meta.get("higher_is_better", True) else -1.0
    task = _task_of_run(manifest)
    texts = {p.id: p.text for p in task.prompts}
    generations = store.load_generations(verify=True)
    rows = store.load_scores(key, generations)
    by_prompt: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for (prompt_id, seed), row in rows.items():
        by_prompt[prompt_id].append((sign * decode_value(row), seed))
    pairs: list[Pair] = []
    for prompt_id in sorted(by_prompt, key=lambda p: (len(p), p)):
        ranked = sorted((v, s) for v, s in by_prompt[prompt_id] if v == v)  # NaN scores rank nowhere
        candidates = [(ranked[-1], ranked[0])] if mode == "best-worst" and len(ranked) > 1 else \
            [(ranked[j], ranked[i]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]
        for (win_value, win_seed), (lose_value, lose_seed) in candidates:
            if win_value - lose_value <= min_margin:
                continue
            pairs.append(Pair(
                id=f"{prompt_id}:{win_seed}>{lose_seed}", prompt=texts[prompt_id],
                winner=str(store.resolve_image(generations[(prompt_id, win_seed)]["image"]).resolve()),
                loser=str(store.resolve_image(generations[(prompt_id, lose_seed)]["image"]).resolve()),
                info={"prompt_id": prompt_id, "winner_seed": win_seed, "loser_seed": lose_seed,
                      "winner_score": sign * win_value, "loser_score": sign * lose_value, "scorer": key,
                      "run_id": manifest["run_id"]}))
    return pairs


def write_pairs(pairs: Sequence[Pair], path: str | Path) -> None:
    from imgbench.util.io import atomic_write_text

    lines = [json.dumps({"id": p.id, "prompt": p.prompt, "winner": p.winner, "loser": p.loser, **p.info},
                        sort_keys=True) for p in pairs]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_pairs_jsonl(path: str | Path) -> Iterator[Pair]:
    base = Path(path).parent
    for number, record in enumerate(read_jsonl(path)):
        try:
            winner, loser, prompt = record["winner"], record["loser"], record["prompt"]
        except KeyError as exc:
            raise UserError(f"{path}: record {number} lacks {exc}; pairs need prompt, winner and loser.") from None
        info = {k: v for k, v in record.items() if k not in ("id", "prompt", "winner", "loser")}
        yield Pair(id=str(record.get("id", number)), prompt=prompt, winner=str(base / winner),
                   loser=str(base / loser), info=info)


def read_pickapic(paths: Sequence[str | Path], limit: int | None = None) -> Iterator[Pair]:
    """Pick-a-Pic v2 rows as pairs, ties (label_0 = 0.5) dropped; files are read in the given order."""
    import pyarrow.parquet as pq

    count = 0
    for path in paths:
        parquet = pq.ParquetFile(path)
        missing = [c for c in PICKAPIC_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise UserError(f"{path}: not a Pick-a-Pic v2 shard (missing columns {', '.join(missing)}).")
        for batch in parquet.iter_batches(columns=[*PICKAPIC_COLUMNS, *(
                ["ranking_id"] if "ranking_id" in parquet.schema_arrow.names else [])], batch_size=256):
            for row_index, row in enumerate(batch.to_pylist()):
                label = row["label_0"]
                if label not in (0, 1, 0.0, 1.0):
                    continue
                first_wins = label == 1
                count += 1
                yield Pair(id=str(row.get("ranking_id", f"{Path(path).name}:{row_index}")), prompt=row["caption"],
                           winner=row["jpg_0"] if first_wins else row["jpg_1"],
                           loser=row["jpg_1"] if first_wins else row["jpg_0"], info={"source": "pickapic_v2"})
                if limit is not None and count >= limit:
                    return


def source_identity(source: str | Path, limit: int | None = None) -> dict[str, Any]:
    """What a trained part's manifest (and the IMG cache key) records of its pairs: a JSONL file's sha256, or
    the names and sizes of Pick-a-Pic shards (hundreds of GB: hashing them would take longer than training)."""
    from imgbench.util.hashing import sha256_file

    path = Path(source)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if path.is_file() and path.suffix == ".jsonl":
        return {"source": str(path.resolve()), "sha256": sha256_file(path), "limit": limit}
    return {"source": str(path.resolve()), "files": [[f.name, f.stat().st_size] for f in files], "limit": limit}


def read_pair_source(source: str | Path, limit: int | None = None) -> Iterator[Pair]:
    """A pairs JSONL (from `imgbench pairs`), a Pick-a-Pic parquet file, or a folder of parquet shards."""
    path = Path(source)
    if path.is_dir():
        shards = sorted(path.glob("*.parquet"))
        if not shards:
            raise UserError(f"{path} holds no *.parquet shards.")
        return read_pickapic(shards, limit)
    if not path.exists():
        raise UserError(f"pairs source {path} not found; make one with `imgbench pairs` or give Pick-a-Pic parquet.")
    if path.suffix == ".parquet":
        return read_pickapic([path], limit)

    def limited() -> Iterator[Pair]:
        for index, pair in enumerate(read_pairs_jsonl(path)):
            if limit is not None and index >= limit:
                return
            yield pair

    return limited()
