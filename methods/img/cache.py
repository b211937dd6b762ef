"""Precomputed training inputs for the aligner, in sharded safetensors files (IMG trains in IP-token space).

For every pair: the IP tokens of the winner and the loser (the model's `encode_image`) and the
guidance states of (loser, question(prompt)) — the paper's condition c = (h, c_I^l). Encoding is
the expensive part and never changes during training, so it is done once. States are large
(≈650 × 5120 per pair for LLaVA-13B), so their dtype and an optional mean pooling are explicit,
recorded options. Shards are written atomically and listed in `cache.json` with the identity of
everything that produced them; an interrupted build resumes after the last complete shard, and a
cache made from other inputs is refused rather than mixed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imgbench.errors import UserError
from imgbench.pairs import Pair
from imgbench.provenance import seed_ranges
from imgbench.util.hashing import sha256_json
from imgbench.util.io import atomic_write_json

logger = logging.getLogger(__name__)

CACHE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
POOLINGS = ("none", "mean")

TokenEncoder = Callable[[list[Any]], torch.Tensor]
GuidanceEncoder = Callable[[list[Any], list[Pair]], list[torch.Tensor]]


@dataclass(frozen=True)
class CacheOptions:
    shard_size: int = 256
    dtype: str = "fp16"
    """Storage dtype of tokens and states (training upcasts to fp32)."""
    pooling: str = "none"
    """'none' keeps every guidance position; 'mean' keeps their mean (one position, ~650× smaller)."""

    def __post_init__(self) -> None:
        if self.dtype not in CACHE_DTYPES or self.pooling not in POOLINGS or self.shard_size < 1:
            raise UserError(f"cache options: dtype in {list(CACHE_DTYPES)}, pooling in {list(POOLINGS)}, "
                            f"shard_size ≥ 1; got {self.dtype!r}, {self.pooling!r}, {self.shard_size}.")


def _write_shard(path: Path, ids: list[str], winners: list[torch.Tensor], losers: list[torch.Tensor],
                 states: list[torch.Tensor], dtype: torch.dtype) -> None:
    import os

    from safetensors.torch import save_file

    tensors = {"winner": torch.stack(winners).to(dtype).contiguous(),
               "loser": torch.stack(losers).to(dtype).contiguous(),
               "states": torch.cat(states).to(dtype).contiguous(),
               "lengths": torch.tensor([s.shape[0] for s in states], dtype=torch.int64)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"ids": json.dumps(ids)})
    os.replace(tmp, path)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "cache.json"
    return json.loads(path.read_text()) if path.exists() else None


def build_cache(folder: str | Path, pairs: Iterable[Pair], identity: dict[str, Any], encode_tokens: TokenEncoder,
                guidance: GuidanceEncoder, options: CacheOptions, batch_size: int = 8) -> dict[str, Any]:
    """Fill `folder` with shards for `pairs` (resuming a partial build with the same identity)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    identity = {**identity, "options": {"dtype": options.dtype, "pooling": options.pooling}}
    digest = sha256_json(identity)
    manifest = read_manifest(folder) or {"identity": identity, "identity_sha256": digest, "shards": [],
                                         "complete": False, "shard_size": options.shard_size}
    if manifest["identity_sha256"] != digest:
        raise UserError(f"cache {folder} was built from other inputs (identity {manifest['identity_sha256'][:12]}, "
                        f"now {digest[:12]}); give another --cache folder or delete it.")
    if manifest["complete"]:
        return manifest
    done = sum(s["n"] for s in manifest["shards"])
    dtype = CACHE_DTYPES[options.dtype]
    buffer: dict[str, list] = {"ids": [], "winner": [], "loser": [], "states": []}

    def flush() -> None:
        if not buffer["ids"]:
            return
        name = f"shard-{len(manifest['shards']):05d}.safetensors"
        _write_shard(folder / name, buffer["ids"], buffer["winner"], buffer["loser"], buffer["states"], dtype)
        manifest["shards"].append({"file": name, "n": len(buffer["ids"])})
        atomic_write_json(folder / "cache.json", manifest)
        logger.info("cache: wrote %s (%d pairs)", name, len(buffer["ids"]))
        for values in buffer.values():
            values.clear()

    def encode(batch: list[Pair]) -> None:
        images = [pair.images() for pair in batch]
        tokens = torch.as_tensor(encode_tokens([img for pair_images in images for img in pair_images])).float().cpu()
        states = guidance([loser for _, loser in images], batch)
        for index, (pair, state) in enumerate(zip(batch, states, strict=True)):
            state = torch.as_tensor(state).float()
            if options.pooling == "mean":
                state = state.mean(0, keepdim=True)
            buffer["ids"].append(pair.id)
            buffer["winner"].append(tokens[2 * index])
            buffer["loser"].append(tokens[2 * index + 1])
            buffer["states"].append(state)
            if len(buffer["ids"]) >= options.shard_size:
                flush()

    batch: list[Pair] = []
    seeds: set[int] | None = set()  # the noise the pairs were drawn with (DESIGN §8); None once a pair lacks it
    for index, pair in enumerate(pairs):
        pair_seeds = [pair.info.get(k) for k in ("winner_seed", "loser_seed")]
        if seeds is not None and all(isinstance(s, int) for s in pair_seeds):
            seeds.update(pair_seeds)
        else:
            seeds = None
        if index < done:
            continue
        batch.append(pair)
        if len(batch) == batch_size:
            encode(batch)
            batch = []
    if batch:
        encode(batch)
    flush()
    if not manifest["shards"]:
        raise UserError("no pairs to cache: the pairs source is empty.")
    manifest["complete"] = True
    first = folder / manifest["shards"][0]["file"]
    from safetensors import safe_open

    with safe_open(str(first), "pt") as handle:
        manifest["token_shape"] = list(handle.get_slice("winner").get_shape()[1:])
        manifest["guidance_dim"] = handle.get_slice("states").get_shape()[1]
    manifest["n"] = sum(s["n"] for s in manifest["shards"])
    manifest["data"] = {"seeds": None if seeds is None else seed_ranges(seeds),
                        "note": "seeds of the pairs' winner and loser images; null: not recorded by the source"}
    atomic_write_json(folder / "cache.json", manifest)
    return manifest


class CachedPairs:
    """Random access to cached pairs; a batch pads guidance states and returns their mask."""

    def __init__(self, folder: str | Path) -> None:
        from safetensors import safe_open

        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if not manifest or not manifest.get("complete"):
            raise UserError(f"{self.folder} is not a complete IMG training cache; build it with `imgbench train img "
                            f"--pairs ... --model ...` (an interrupted build resumes).")
        self.manifest = manifest
        self.rows = [(s, r) for s, shard in enumerate(manifest["shards"]) for r in range(shard["n"])]
        self._handles = [safe_open(str(self.folder / shard["file"]), "pt") for shard in manifest["shards"]]
        self._offsets = []
        for handle in self._handles:
            lengths = handle.get_tensor("lengths")
            self._offsets.append(torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]))

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        winners, losers, states = [], [], []
        for index in indices:
            shard, row = self.rows[index]
            handle, offsets = self._handles[shard], self._offsets[shard]
            winners.append(handle.get_slice("winner")[row:row + 1][0])
            losers.append(handle.get_slice("loser")[row:row + 1][0])
            states.append(handle.get_slice("states")[int(offsets[row]):int(offsets[row + 1])])
        longest = max(s.shape[0] for s in states)
        padded = torch.zeros(len(states), longest, states[0].shape[1])
        mask = torch.zeros(len(states), longest, dtype=torch.bool)
        for i, state in enumerate(states):
            padded[i, :state.shape[0]] = state.float()
            mask[i, :state.shape[0]] = True
        return {"winner": torch.stack(winners).float(), "loser": torch.stack(losers).float(), "states": padded,
                "mask": mask}
