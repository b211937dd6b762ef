"""Training the Implicit Aligner with the IUPO objective (IMG paper §3.4, §4.1 and supplementary A).

Training happens in IP-token space only, on a precomputed cache (cache.py): f_θ(h, c_l) is
pulled toward the winner's tokens c_w with L = L_base + λ·L_pref (objective.py), AdamW with a
constant lr 1e-4 and weight decay 1e-4, batch 8 (paper). The reference f_ref starts as a copy
of f_θ — with the zero-initialised output layer any initialisation is the identity map, so the
paper's "randomly initialised" reference and f_θ compute the same function at step 0 — and is
replaced by f_θ after k consecutive qualifying steps (Eq. 18).

Reproducible and resumable: the batch at step t is a pure function of (seed, t) — a seeded
permutation per epoch — so a run resumed from a checkpoint sees exactly the batches an
uninterrupted run would, and on CPU ends with bit-identical weights. Checkpoints hold f_θ,
f_ref, AdamW's state and the reference schedule; Ctrl-C saves one before exiting.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from imgbench.methods.img.aligner import AlignerConfig, ImplicitAligner
from imgbench.methods.img.cache import CachedPairs
from imgbench.methods.img.objective import ObjectiveConfig, ReferenceSchedule, copy_into_reference, iupo_loss

from imgbench import __version__
from imgbench.errors import UserError
from imgbench.util.io import atomic_write_json

logger = logging.getLogger(__name__)

#: Fields that only say when to stop or how often to write; a run may resume with other values.
NOT_RESUME_CRITICAL = ("steps", "checkpoint_every", "log_every", "eval_every")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a trained aligner; written in full next to the weights."""

    aligner: AlignerConfig
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    train_passes: int = 1
    """Aligner passes inside the loss (inference uses 3; the paper does not say how it trains: 1)."""
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    eval_every: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    def resume_key(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in NOT_RESUME_CRITICAL}


def batch_indices(step: int, batch_size: int, n: int, seed: int, _cache: dict | None = None) -> list[int]:
    """Items of step `step`: consecutive slices of a seeded permutation per epoch (no global RNG)."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, n)
        if _cache is None or _cache.get("epoch") != epoch:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            permutation = torch.randperm(n, generator=generator).tolist()
            if _cache is not None:
                _cache.update(epoch=epoch, permutation=permutation)
        else:
            permutation = _cache["permutation"]
        indices.append(permutation[offset])
    return indices


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Owns f_θ, f_ref, the optimiser and the schedule for one output folder."""

    def __init__(self, cache: CachedPairs, out: str | Path, config: TrainConfig,
                 eval_hook: Callable[[int, Path], dict[str, Any]] | None = None) -> None:
        self.cache, self.out, self.config, self.eval_hook = cache, Path(out), config, eval_hook
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = ImplicitAligner(config.aligner)
        self.reference = ImplicitAligner(config.aligner).requires_grad_(False)
        copy_into_reference(self.model, self.reference)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           betas=config.betas)
        self.schedule = ReferenceSchedule(config.objective.k, config.objective.judgement)
        self.step = 0
        self._epoch_cache: dict[str, Any] = {}

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {"step": self.step, "model": self.model.state_dict(), "reference": self.reference.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                 "config": self.config.resume_key(), "cache": self.cache.manifest["identity_sha256"]}
        _atomic_torch_save(state, self.checkpoint_path)

    def try_resume(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        if state["config"] != json.loads(json.dumps(self.config.resume_key())) or \
                state["cache"] != self.cache.manifest["identity_sha256"]:
            raise UserError(f"{self.checkpoint_path} was written by a run with other settings or data; resume with "
                            f"the same options, or choose another --out folder.")
        self.model.load_state_dict(state["model"])
        self.reference.load_state_dict(state["reference"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step = int(state["step"])
        logger.info("resumed from %s at step %d", self.checkpoint_path, self.step)
        return True

    def train_step(self) -> dict[str, float]:
        """One optimiser step on the batch of `self.step`; returns the loss terms (floats)."""
        indices = batch_indices(self.step, self.config.batch_size, len(self.cache), self.config.seed,
                                self._epoch_cache)
        batch = self.cache.batch(indices)
        h, c_l, mask = batch["states"], batch["loser"], batch["mask"]
        passes = self.config.train_passes
        f = self.model.align(h, c_l, passes, mask)
        with torch.no_grad():
            f_ref = self.reference.align(h, c_l, passes, mask)
        terms = iupo_loss(f, f_ref, batch["winner"], c_l, self.config.objective)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        updated = self.schedule.observe(terms["dist_theta"], terms["dist_ref"])
        if updated:
            copy_into_reference(self.model, self.reference)
        self.step += 1
        return {"loss": terms["loss"].item(), "base": terms["base"].item(), "pref": terms["pref"].item(),
                "ref_updates": self.schedule.updates, "ref_updated": updated}

    def run(self, progress: bool = True) -> dict[str, Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.out.mkdir(parents=True, exist_ok=True)
        written = self.out / "aligner.json"
        if self.step >= self.config.steps and written.exists():  # a finished run: report it, rewrite nothing
            return {"step": self.step, **json.loads(written.read_text())["final"]}
        log_path = self.out / "log.jsonl"
        config = self.config
        last: dict[str, Any] = {}
        columns = (TextColumn("train img"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("L {task.fields[loss]:.4g} base {task.fields[base]:.4g} pref {task.fields[pref]:.4g} "
                              "ref-updates {task.fields[ref_updates]}"))
        with Progress(*columns, disable=not progress) as bar, open(log_path, "a", encoding="utf-8") as log:
            task = bar.add_task("train", total=config.steps, completed=self.step, loss=float("nan"),
                                base=float("nan"), pref=float("nan"), ref_updates=self.schedule.updates)
            try:
                while self.step < config.steps:
                    last = self.train_step()
                    bar.update(task, advance=1, **{k: last[k] for k in ("loss", "base", "pref", "ref_updates")})
                    if self.step % config.log_every == 0 or self.step == config.steps or last["ref_updated"]:
                        log.write(json.dumps({"step": self.step, **last}) + "\n")
                        log.flush()
                    if self.step % config.checkpoint_every == 0:
                        self.save_checkpoint()
                    if config.eval_every and self.eval_hook and self.step % config.eval_every == 0:
                        result = self.eval_hook(self.step, self.write_weights(self.out / "eval" / f"step-{self.step}"))
                        log.write(json.dumps({"step": self.step, "eval": result}) + "\n")
                        log.flush()
            except KeyboardInterrupt:
                self.save_checkpoint()
                logger.warning("interrupted at step %d; checkpoint saved, rerun the same command to resume", self.step)
                raise
        self.save_checkpoint()
        self.write_weights(self.out, final=last)
        return {"step": self.step, **last}

    def write_weights(self, folder: Path, final: dict[str, Any] | None = None) -> Path:
        """aligner.safetensors + aligner.json (the full training config) — what the `img` method loads."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "aligner.safetensors"
        tmp = folder / ".aligner.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(tmp),
                  metadata={"format": "imgbench-img-aligner", "step": str(self.step)})
        os.replace(tmp, path)
        atomic_write_json(folder / "aligner.json", {
            "format": "imgbench-img-aligner", "imgbench": __version__, "step": self.step,
            "train": self.config.to_dict(), "cache": self.cache.manifest["identity"],
            "cache_sha256": self.cache.manifest["identity_sha256"], "n_pairs": len(self.cache),
            "data": self.cache.manifest.get("data", {"seeds": None}),
            "reference_updates": self.schedule.updates, "final": final or {},
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return path
