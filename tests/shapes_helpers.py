"""Shared builders for the shapes-world tests: a tiny trained snapshot (real classes, tiny configs)."""

from __future__ import annotations

from pathlib import Path

from imgbench.worlds.shapes.train_cli import TINY_TEXT, TINY_UNET
from imgbench.worlds.shapes.train_unet import UNetTrainConfig, UNetTrainer


def tiny_config(**overrides) -> UNetTrainConfig:
    return UNetTrainConfig(**{"batch": 4, "warmup": 2, "unet": TINY_UNET, "text": TINY_TEXT, **overrides})


def tiny_snapshot(workdir: Path, steps: int = 2) -> Path:
    """Train a tiny model for a couple of steps and save its EMA snapshot (the shipped layout)."""
    trainer = UNetTrainer(tiny_config(), workdir)
    trainer.run(steps)
    return trainer.snapshot()
