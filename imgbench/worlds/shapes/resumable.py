"""The checkpoint-and-resume loop every shapes-world trainer shares.

A session can end at any moment, so training writes an atomic checkpoint every few minutes and at
the end, and a new process on the same --workdir continues from it. Each step's random draws are
seeded by (seed, step) inside `train_step`, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from imgbench.errors import UserError

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def format_seconds(seconds: float) -> str:
    """'1h02m', '3m05s', '12s': an ETA a log reader takes in at a glance."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ResumableTrainer:
    """Subclasses call `super().__init__`, set `optimizer`, then `resume()`, and implement `train_step`,
    `trainable_state` and `load_trainable_state` (and `snapshot` if they snapshot, `step_metrics` if a step
    measures more than its loss)."""

    optimizer: Any

    def __init__(self, config: Any, workdir: str | Path) -> None:
        """A fresh run's state: step 0, no wall time, no loss history; `resume` overwrites it."""
        self.config, self.workdir = config, Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.step, self.wall_seconds = 0, 0.0
        self.history: list[dict[str, float]] = []

    def train_step(self) -> float:
        raise NotImplementedError

    def step_metrics(self) -> dict[str, float]:
        """Numbers the last `train_step` measured besides its loss (the DPO trainer's reward accuracy); they are
        averaged over the log window into the history and the log line like the loss."""
        return {}

    def trainable_state(self) -> dict[str, Any]:
        """The tensors to checkpoint besides the optimizer; by default the one network `self.model`."""
        return {"model": self.model.state_dict()}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])

    def set_lr(self) -> None:
        """Linear learning-rate warm-up over `config.warmup` steps, then `config.lr`, cosine-annealed to 0 over
        `config.anneal_steps` steps from step `config.anneal_from` where the config has those (0: constant)."""
        lr = self.config.lr * min(1.0, (self.step + 1) / max(1, self.config.warmup))
        anneal_steps = getattr(self.config, "anneal_steps", 0)
        if anneal_steps and self.step >= self.config.anneal_from:
            progress = min(1.0, (self.step - self.config.anneal_from) / anneal_steps)
            lr *= 0.5 * (1.0 + math.cos(math.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def optimize(self, loss: Any, max_norm: float = 1.0) -> float:
        """One optimiser step on `loss` with gradient clipping over the optimiser's parameters."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], max_norm)
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def snapshot(self) -> Path:
        raise NotImplementedError(f"{type(self).__name__} writes no snapshots")

    def same_config(self, saved: dict[str, Any]) -> bool:
        """A checkpoint's config matches if it equals ours; fields added since take their defaults."""
        added = {}
        for item in fields(self.config):
            if item.name not in saved:
                if item.default is not MISSING:
                    added[item.name] = item.default
                elif item.default_factory is not MISSING:
                    added[item.name] = item.default_factory()
        return {**added, **saved} == asdict(self.config)

    def resume(self) -> bool:
        """Continue from --workdir's checkpoint if there is one; a different config is a user error."""
        import torch

        path = self.workdir / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not self.same_config(state["config"]):
            raise UserError(f"{path} was trained with config {state['config']}, not {asdict(self.config)}; resume "
                            f"with the same options or use a new --workdir.")
        self.restore(state)
        logger.info("resumed %s at step %d (%.0f s of training so far)", self.workdir, self.step, self.wall_seconds)
        return True

    def restore(self, state: dict[str, Any]) -> None:
        """Take over a checkpoint's weights, optimiser moments, step, wall time and loss history."""
        self.load_trainable_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.wall_seconds, self.history = state["step"], state["wall_seconds"], state["history"]

    def save(self) -> None:
        """Atomic: write a temp file, then rename, so a killed process never leaves half a checkpoint."""
        import torch

        state = {"config": asdict(self.config), "step": self.step, "wall_seconds": self.wall_seconds,
                 "history": self.history, **self.trainable_state(), "optimizer": self.optimizer.state_dict()}
        tmp = self.workdir / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.workdir / CHECKPOINT)

    def run(self, max_steps: int, minutes: float | None = None, checkpoint_minutes: float = 5.0,
            snapshot_every: int = 0, log_every: int = 50, on_step: Any = None) -> None:
        """Train until `max_steps` (or `minutes` of wall time), checkpointing as it goes and at the end."""
        start = last_save = time.monotonic()
        first_step, first_wall = self.step, self.wall_seconds
        window: list[dict[str, float]] = []
        while self.step < max_steps:
            tick = time.monotonic()
            loss = self.train_step()
            window.append({"loss": loss, **self.step_metrics()})
            self.wall_seconds += time.monotonic() - tick
            if on_step:
                on_step(self.step)
            if self.step % log_every == 0 or self.step == max_steps:
                means = {key: sum(row[key] for row in window) / len(window) for key in window[0]}
                self.history.append({"step": self.step, **means, "wall_seconds": round(self.wall_seconds, 1)})
                per_step = (self.wall_seconds - first_wall) / (self.step - first_step)
                shown = " ".join(f"{key} {value:.4f}" for key, value in means.items())
                logger.info("step %d %s (%.2f s/step, eta %s)", self.step, shown, per_step,
                            format_seconds(per_step * (max_steps - self.step)))
                window = []
            if snapshot_every and self.step % snapshot_every == 0:
                self.save()
                last_save = time.monotonic()
                self.snapshot()
            if time.monotonic() - last_save > checkpoint_minutes * 60:
                self.save()
                last_save = time.monotonic()
            if minutes is not None and time.monotonic() - start > minutes * 60:
                break
        self.save()
