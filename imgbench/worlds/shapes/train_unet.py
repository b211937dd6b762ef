"""Training the shapes text-to-image model (text encoder + UNet jointly), resumable and bit-reproducible.

Recipe (reference/shapes_feasibility.md §3): v-prediction on a cosine (`squaredcos_cap_v2`)
schedule, AdamW with linear warm-up, gradient clipping, EMA of both networks, and caption
dropout so the caption-free branch that classifier-free guidance needs is trained too.

Every random draw of step k comes from generators seeded by (seed, k) — the captions, the
rendered layouts, the dropout mask, the noise and the timesteps — so a run resumed from a
checkpoint takes exactly the steps an uninterrupted run takes (tests check both).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.errors import UserError
from imgbench.worlds.shapes import nets
from imgbench.worlds.shapes.grammar import SKILLS, splits
from imgbench.worlds.shapes.render import draw, layout
from imgbench.worlds.shapes.resumable import CHECKPOINT, ResumableTrainer

logger = logging.getLogger(__name__)



@dataclass
class UNetTrainConfig:
    """Everything that changes the trained weights (saved with every checkpoint and the manifest)."""

    seed: int = 0
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 200
    caption_dropout: float = 0.15
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    unet: dict[str, Any] = field(default_factory=dict)
    """Overrides of nets.UNET_CONFIG (tests use tiny ones)."""
    text: dict[str, Any] = field(default_factory=dict)
    """Overrides of nets.TEXT_CONFIG."""
    init_from: str = ""
    """Where to warm-start from: another run's --workdir (its checkpoint: live and EMA weights in fp32,
    optimiser state, step count), or a snapshot or exported weights folder (EMA weights for both, its step
    count, fresh optimiser state): how a new machine continues from the weights committed to the repo."""
    anneal_from: int = 0
    anneal_steps: int = 0
    """Cosine-anneal the learning rate from `lr` to 0 over `anneal_steps` steps starting at step
    `anneal_from` (0: constant `lr`), the usual last phase of a diffusion run: the constant-rate phase
    plateaus with noisy weights that a decaying rate settles."""


def train_rows() -> list[list[tuple[str, dict[str, Any]]]]:
    """Train captions per skill (skills are drawn uniformly, then a caption within the skill)."""
    table = splits()["train"]
    return [[(caption, spec) for caption, spec, _ in table[skill]] for skill in SKILLS]


def make_batch(rows: list[list[tuple[str, dict[str, Any]]]], seed: int, step: int, batch: int,
               dropout: float) -> tuple[list[str], np.ndarray]:
    """Captions (some dropped to "") and uint8 renders (B, 32, 32, 3) for step `step`."""
    rng = np.random.default_rng([seed, step])
    captions, pixels = [], []
    for _ in range(batch):
        skill_rows = rows[int(rng.integers(len(rows)))]
        caption, spec = skill_rows[int(rng.integers(len(skill_rows)))]
        pixels.append(draw(layout(spec, rng)))
        captions.append("" if rng.random() < dropout else caption)
    return captions, np.stack(pixels)


def update_ema(step: int, max_decay: float, pairs: Any) -> None:
    """EMA of each (live, ema) network pair after optimiser step `step` (0-based), with the usual warm-up of
    the decay, (1 + step) / (10 + step), so early averages are not dominated by the initial weights."""
    import torch

    decay = min(max_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for live, ema in pairs:
            ema_params, live_params = list(ema.parameters()), list(live.parameters())
            torch._foreach_mul_(ema_params, decay)
            torch._foreach_add_(ema_params, live_params, alpha=1 - decay)


def to_tensor(pixels: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class UNetTrainer(ResumableTrainer):
    """Holds the networks, optimiser and EMA; `run` trains until a step or time budget and checkpoints."""

    def __init__(self, config: UNetTrainConfig, workdir: str | Path) -> None:
        import torch

        super().__init__(config, workdir)
        self.tokenizer = nets.build_tokenizer()
        with torch.random.fork_rng():  # seeded initial weights without disturbing the caller's global RNG
            torch.manual_seed(config.seed)
            self.text = nets.build_text_encoder(len(self.tokenizer), config.text)
            self.unet = nets.build_unet(self.text.config.hidden_size, config.unet)
        self.scheduler = nets.build_train_scheduler()
        params = list(self.text.parameters()) + list(self.unet.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        self.ema_text, self.ema_unet = copy.deepcopy(self.text), copy.deepcopy(self.unet)
        self.rows = train_rows()
        if not self.resume() and config.init_from:
            self._warm_start(Path(config.init_from))

    # -- one step -------------------------------------------------------------------------------------------
    def loss_at(self, step: int) -> Any:
        import torch

        captions, pixels = make_batch(self.rows, self.config.seed, step, self.config.batch,
                                      self.config.caption_dropout)
        x0 = nets.pack(to_tensor(pixels))
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        states, pooled = nets.encode(self.text, nets.tokenize(self.tokenizer, captions))
        noisy = self.scheduler.add_noise(x0, noise, t)
        pred = self.unet(noisy, t, encoder_hidden_states=states, class_labels=pooled).sample
        return torch.nn.functional.mse_loss(pred, self.scheduler.get_velocity(x0, noise, t))

    def train_step(self) -> float:
        import torch

        self.set_lr()
        loss = self.loss_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        return float(loss.detach())

    def _update_ema(self) -> None:
        update_ema(self.step, self.config.ema_decay, ((self.text, self.ema_text), (self.unet, self.ema_unet)))

    # -- checkpoints ----------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, Any]:
        return {"text": self.text.state_dict(), "unet": self.unet.state_dict(),
                "ema_text": self.ema_text.state_dict(), "ema_unet": self.ema_unet.state_dict()}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        for name in ("text", "unet", "ema_text", "ema_unet"):
            getattr(self, name).load_state_dict(state[name])

    def _warm_start(self, folder: Path) -> None:
        import torch

        if (folder / CHECKPOINT).exists():
            self._branch_from_checkpoint(folder / CHECKPOINT)
            return
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        state = folder / "train_state.json" if (folder / "train_state.json").exists() else folder / "manifest.json"
        if not state.exists():
            raise UserError(f"--init-from {folder}: no train_state.json or manifest.json (a snapshot or exported "
                            f"weights folder is needed).")
        text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32)
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
        for live, ema, loaded in ((self.text, self.ema_text, text), (self.unet, self.ema_unet, unet)):
            live.load_state_dict(loaded.state_dict())
            ema.load_state_dict(loaded.state_dict())
        facts = json.loads(state.read_text())
        self.step = int(facts["step"])
        self.wall_seconds = float(facts.get("wall_seconds", facts.get("train_wall_seconds", 0.0)))
        logger.info("warm-started from %s at step %d", folder, self.step)

    def _branch_from_checkpoint(self, path: Path) -> None:
        """Continue another run exactly (fp32 live and EMA weights, optimiser moments) under a new schedule."""
        import torch

        state = torch.load(path, map_location="cpu", weights_only=False)
        architecture = ("seed", "batch", "unet", "text")
        if any(state["config"].get(key) != getattr(self.config, key) for key in architecture):
            raise UserError(f"--init-from {path.parent}: that run's {architecture} are "
                            f"{[state['config'].get(k) for k in architecture]}, not "
                            f"{[getattr(self.config, k) for k in architecture]}.")
        self.restore(state)
        logger.info("branched from %s at step %d", path, self.step)

    def snapshot(self) -> Path:
        """The EMA networks plus tokenizer in library format (fp16 to halve the size), for eval and export."""
        import torch

        folder = self.workdir / "snapshots" / f"step_{self.step:06d}"
        for name, module in (("text_encoder", self.ema_text), ("unet", self.ema_unet)):
            copy.deepcopy(module).to(torch.float16).save_pretrained(folder / name)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        nets.build_sampler().save_pretrained(folder / "scheduler")
        facts = {"step": self.step, "wall_seconds": round(self.wall_seconds, 1), "config": asdict(self.config),
                 "recent_loss": self.history[-1]["loss"] if self.history else None}
        (folder / "train_state.json").write_text(json.dumps(facts, indent=2))
        return folder
