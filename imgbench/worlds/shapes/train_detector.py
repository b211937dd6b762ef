"""Training `shapes-detector`: per-pixel colour and shape from the checker's masks of training images.

Sources, a `generated_share` of each batch and renders for the rest: the shapes model's own drawings of
train captions (from `llava-data`: what the detector reads at test time, blobs and tints included) and a
pool of clean renders of train captions (seeds from DETECTOR_RENDERS_FIRST_SEED, recorded like the
drawings'). Targets: the checker's objects (`detector.targets`). Loss: cross-entropy on colour plus on
shape over object pixels. A row is mirrored left-right half the time (every shape of the world is
symmetric about its vertical axis; a triangle is not about its horizontal one).

Every random draw of step k is seeded by (seed, k) and the initial weights by the seed, so a resumed run
equals an uninterrupted one. Nothing here sees a val or test caption or seed (DESIGN §8).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.provenance import data_record
from imgbench.worlds.shapes import seeds
from imgbench.worlds.shapes.detector import IGNORE, build_net, targets, to_input
from imgbench.worlds.shapes.grammar import COLORS
from imgbench.worlds.shapes.render import render
from imgbench.worlds.shapes.resumable import ResumableTrainer
from imgbench.worlds.shapes.train_unet import train_rows


@dataclass
class DetectorTrainConfig:
    generated: str = ""
    """`llava-data` .npz of the shapes model's drawings of train captions (its seeds go into the manifest)."""
    generated_share: float = 0.5
    renders: int = 6088
    """Size of the render pool (as many as llava-data's drawings: two per train caption)."""
    seed: int = 0
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 50
    anneal_from: int = 0
    anneal_steps: int = 0
    width: int = 16
    """Channels of the U-Net's first level: 16 reads val drawings (val seeds) at 99.9% precision and recall."""


def render_pool(count: int) -> tuple[np.ndarray, list[int]]:
    """`count` renders of the train captions, cycled, caption i drawn with seed DETECTOR_RENDERS_FIRST_SEED + i."""
    specs = [spec for rows in train_rows() for _, spec in rows]
    used = seeds.check_part_seeds(range(seeds.DETECTOR_RENDERS_FIRST_SEED, seeds.DETECTOR_RENDERS_FIRST_SEED + count),
                                  "shapes-detector renders")
    pixels = [np.asarray(render(specs[i % len(specs)], seed)) for i, seed in enumerate(used)]
    return np.stack(pixels) if pixels else np.zeros((0, 32, 32, 3), np.uint8), used


def labelled(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour targets, shape targets), each (N, 32, 32)."""
    pairs = [targets(p) for p in pixels]
    empty = np.zeros((0, *pixels.shape[1:3]), np.int64)
    return (np.stack([c for c, _ in pairs]) if pairs else empty, np.stack([s for _, s in pairs]) if pairs else empty)


class DetectorTrainer(ResumableTrainer):
    def __init__(self, config: DetectorTrainConfig, workdir: str | Path) -> None:
        import torch

        super().__init__(config, workdir)
        with torch.random.fork_rng():  # seeded initial weights without disturbing the caller's global RNG
            torch.manual_seed(config.seed)
            self.model = build_net(config.width)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        self.drawings, self.drawings_data = np.zeros((0, 32, 32, 3), np.uint8), None
        if config.generated:
            from imgbench.worlds.shapes.llava_generated import data_of, load

            self.drawings, _, _ = load(config.generated)
            self.drawings_data = data_of(config.generated)
        self.renders, self.render_seeds = render_pool(config.renders)
        self.drawing_targets, self.render_targets = labelled(self.drawings), labelled(self.renders)
        self.resume()

    def batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pixels, colour targets, shape targets) of step `step`, each row mirrored half the time."""
        rng = np.random.default_rng([self.config.seed, step])
        pixels, colors, shapes = [], [], []
        for _ in range(self.config.batch):
            drawn = len(self.drawings) and (not len(self.renders) or rng.random() < self.config.generated_share)
            source, (color, shape) = ((self.drawings, self.drawing_targets) if drawn
                                      else (self.renders, self.render_targets))
            index = int(rng.integers(len(source)))
            flip = slice(None, None, -1 if rng.random() < 0.5 else 1)
            pixels.append(source[index][:, flip])
            colors.append(color[index][:, flip])
            shapes.append(shape[index][:, flip])
        return np.stack(pixels), np.stack(colors), np.stack(shapes)

    def loss_at(self, step: int) -> Any:
        import torch
        from torch.nn.functional import cross_entropy

        pixels, colors, shapes = self.batch_at(step)
        logits = self.model(to_input(pixels))
        color_logits, shape_logits = logits[:, :1 + len(COLORS)], logits[:, 1 + len(COLORS):]
        loss = cross_entropy(color_logits, torch.from_numpy(colors), ignore_index=IGNORE)
        shape_target = torch.from_numpy(shapes)
        if (shape_target != IGNORE).any():
            loss = loss + cross_entropy(shape_logits, shape_target, ignore_index=IGNORE)
        return loss

    def train_step(self) -> float:
        self.set_lr()
        return self.optimize(self.loss_at(self.step))

    def export(self, out: str | Path) -> Path:
        """config.json (the net's width), model.safetensors (fp32: the net is small) and a manifest naming the
        captions and seeds its data used (DESIGN §8)."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, out / "model.safetensors")
        (out / "config.json").write_text(json.dumps({"width": self.config.width}, indent=2) + "\n")
        drawn = self.drawings_data or data_record([], seeds.SPLIT_VERSION)
        rendered = data_record(self.render_seeds, seeds.SPLIT_VERSION)["seeds"]
        manifest = {"component": "detector", "step": self.step, "train_wall_seconds": round(self.wall_seconds, 1),
                    "config": asdict(self.config), "recent_train_loss": self.history[-1] if self.history else None,
                    "data": {**drawn, "seeds": sorted(drawn["seeds"] + rendered), "captions": "train",
                             "drawings": f"{len(self.drawings)} llava-data drawings of train captions",
                             "renders": f"{len(self.renders)} renders of train captions, seeds "
                                        f"{seeds.DETECTOR_RENDERS_FIRST_SEED:,} on",
                             "targets": "checker.objects masks"}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out
