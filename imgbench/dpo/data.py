"""Preference pairs for Diffusion-DPO, in an order that is a pure function of (seed, step).

A source is an imgbench pairs JSONL (`imgbench pairs`: prompt, winner and loser image paths, and the seeds they
were drawn with) or Pick-a-Pic v2 parquet (one file or a folder of shards; columns `caption`, `jpg_0`, `jpg_1`,
`label_0`; ties dropped, as in Diffusion-DPO). Pick-a-Pic's 851K pairs do not fit in memory, so the order is
shuffled shard-locally: each epoch visits the shards in a seeded order and each shard's rows in a seeded order,
and only the shard being read is held. A JSONL file is one shard, i.e. a full shuffle. Either way the pairs of
step k are fixed by (seed, k), so a resumed run reads exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.errors import UserError
from imgbench.pairs import Pair, read_pairs_jsonl, read_pickapic, source_identity


@dataclass(frozen=True)
class Shard:
    path: Path
    count: int
    """Pairs in it (Pick-a-Pic ties excluded)."""


def _pickapic_count(path: Path) -> int:
    """Non-tie rows of a shard, read from its `label_0` column alone (no images)."""
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    if "label_0" not in names:
        raise UserError(f"{path}: not a Pick-a-Pic v2 shard (no label_0 column).")
    labels = pq.read_table(path, columns=["label_0"]).column("label_0").to_pylist()
    return sum(1 for label in labels if label in (0, 1))


class PairData:
    """The pairs of one source, read in the seeded order."""

    def __init__(self, source: str | Path) -> None:
        path = Path(source)
        if not path.exists():
            raise UserError(f"pairs source {path} not found; make one with `imgbench pairs RUN --scorer S --out "
                            f"pairs.jsonl`, or give Pick-a-Pic v2 parquet (a file or a folder of shards).")
        self.identity: dict[str, Any] = source_identity(path)
        if path.is_dir() or path.suffix == ".parquet":
            files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
            if not files:
                raise UserError(f"{path} holds no *.parquet shards.")
            self.shards = [Shard(f, _pickapic_count(f)) for f in files]
            self.pairs: list[Pair] | None = None
            """A JSONL source's pairs, in file order (held in memory; None for Pick-a-Pic)."""
            self._loaded: tuple[int, list[Pair]] | None = None
        else:
            self.pairs = list(read_pairs_jsonl(path))
            self.shards = [Shard(path, len(self.pairs))]
            self._loaded = (0, self.pairs)
        self.n = sum(s.count for s in self.shards)
        if not self.n:
            raise UserError(f"pairs source {path} holds no pairs (Pick-a-Pic ties are dropped).")
        self._orders: dict[tuple[int, ...], np.ndarray] = {}

    def seeds(self) -> list[int] | None:
        """The generator seeds of every winner and loser, or None when any pair does not record them (Pick-a-Pic
        never does): what the trained part's manifest declares it saw (DESIGN §8)."""
        if self.pairs is None:
            return None
        seeds = []
        for pair in self.pairs:
            drawn = [pair.info.get("winner_seed"), pair.info.get("loser_seed")]
            if not all(isinstance(s, int) for s in drawn):
                return None
            seeds += drawn
        return seeds

    def batch(self, seed: int, step: int, size: int) -> list[Pair]:
        """The `size` pairs of step `step`: consecutive positions of the seeded epoch order."""
        return [self._at(seed, position) for position in range(step * size, (step + 1) * size)]

    def _order(self, *key: int) -> np.ndarray:
        """A seeded permutation (of the shards for key (seed, epoch), of a shard's rows for (seed, epoch, shard))."""
        if key not in self._orders:
            if len(self._orders) > 64:
                self._orders.clear()
            n = self.shards[key[2]].count if len(key) == 3 else len(self.shards)
            self._orders[key] = np.random.default_rng(list(key)).permutation(n)
        return self._orders[key]

    def _at(self, seed: int, position: int) -> Pair:
        epoch, offset = divmod(position, self.n)
        for shard_index in self._order(seed, epoch):
            count = self.shards[shard_index].count
            if offset < count:
                row = int(self._order(seed, epoch, int(shard_index))[offset])
                return self._shard_pairs(int(shard_index))[row]
            offset -= count
        raise AssertionError("position beyond the epoch")  # unreachable: offset < self.n

    def _shard_pairs(self, index: int) -> list[Pair]:
        if self._loaded is None or self._loaded[0] != index:
            self._loaded = (index, list(read_pickapic([self.shards[index].path])))
        return self._loaded[1]


def to_pixels(images: list[Any], resolution: int) -> Any:
    """(B, 3, R, R) in [-1, 1]: each image's shorter side resized to R (bilinear) and centre-cropped, as the
    Diffusion-DPO code prepares Pick-a-Pic; an image already R × R is taken as is. No horizontal flip: the
    shapes world's captions say left and right."""
    from PIL import Image

    from imgbench.worlds.shapes.train_unet import to_tensor

    arrays = []
    for image in images:
        image = image.convert("RGB")
        if image.size != (resolution, resolution):
            scale = resolution / min(image.size)
            width, height = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            left, top = (width - resolution) // 2, (height - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
        arrays.append(np.asarray(image))
    return to_tensor(np.stack(arrays))
