"""Training `shapes-ip2p` from the shipped text-to-image model, as Instruct-Pix2Pix finetunes SD (§3.2).

Per row: a source (half the shapes model's own drawings of train captions, from `llava-data`; half clean
renders of train captions), one random edit of the grammar and its exact target (`ip2p_data`). Loss: the
text-to-image model's v-prediction loss on the target, with the packed source concatenated to the
noisy input. Conditioning dropout as the paper (its 5%, here `dropout`): a `dropout` share of rows
lose the instruction, as many lose both, and as many lose the source, so both guidance branches are
trained. Text encoder and UNet both train (the new instruction words need their embeddings and the
encoder's context), with an EMA of both, which is what is exported.

Every random draw of step k is seeded by (seed, k); training noise comes from generators seeded
`NOISE_BASE` + ..., never a test or val seed (DESIGN §8).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.errors import UserError
from imgbench.provenance import data_record
from imgbench.worlds.shapes import ip2p, nets, seeds
from imgbench.worlds.shapes.ip2p_data import Thing, instruction_words, make_triple, things_of
from imgbench.worlds.shapes.render import draw, layout
from imgbench.worlds.shapes.resumable import CHECKPOINT, ResumableTrainer
from imgbench.worlds.shapes.train_unet import to_tensor, train_rows, update_ema

NOISE_BASE = 10_000_000
"""Training noise generators are seeded from here up: a generator seeded with a test seed (0-7) would
draw that seed's noise tensor as its first row."""


@dataclass
class IP2PTrainConfig:
    base: str
    """The shipped (or exported) shapes weights the editor starts from."""
    generated: str = ""
    """`llava-data` .npz of the shapes model's drawings of train captions (its seeds go into the manifest)."""
    generated_share: float = 0.5
    seed: int = 0
    batch: int = 64
    lr: float = 3e-4
    warmup: int = 100
    dropout: float = 0.05
    ema_decay: float = 0.999
    anneal_from: int = 0
    anneal_steps: int = 0
    init_from: str = ""
    """Another run's --workdir to continue exactly (weights, EMA, optimiser moments, step count) under this
    config's schedule and data mix: how a finished run is trained further with a new cosine cycle."""


def sources_of(config: IP2PTrainConfig) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The model drawings and their `data` record (seeds), or an empty array when training on renders only."""
    if not config.generated:
        return np.zeros((0, 32, 32, 3), dtype=np.uint8), None
    from imgbench.worlds.shapes.llava_generated import data_of, load

    pixels, _, _ = load(config.generated)
    return pixels, data_of(config.generated)


def same_base(theirs: str, ours: str) -> bool:
    """Whether two --base folders are the same weights: the same path, or folders whose files have the same
    names and bytes (a run continued from another checkout of the package)."""
    if theirs == ours:
        return True
    from imgbench.worlds.shapes.model import weights_digest

    return Path(theirs).is_dir() and Path(ours).is_dir() and weights_digest(Path(theirs)) == weights_digest(Path(ours))


class IP2PTrainer(ResumableTrainer):
    def __init__(self, config: IP2PTrainConfig, workdir: str | Path) -> None:
        import torch
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        super().__init__(config, workdir)
        base = Path(config.base)
        if not all((base / part).is_dir() for part in ("tokenizer", "text_encoder", "unet")):
            raise UserError(f"{base} does not hold the shapes model (tokenizer/, text_encoder/, unet/); pass --base "
                            f"with the shipped weights folder.")
        self.tokenizer = ip2p.extended_tokenizer(nets.load_tokenizer(base / "tokenizer"), instruction_words())
        self.text = CLIPTextModel.from_pretrained(base / "text_encoder", torch_dtype=torch.float32)
        self.unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32)
        ip2p.extend_text_encoder(self.text, len(self.tokenizer), config.seed)
        ip2p.add_source_channels(self.unet)
        self.text.train()
        self.unet.train()
        self.ema_text, self.ema_unet = copy.deepcopy(self.text), copy.deepcopy(self.unet)
        self.optimizer = torch.optim.AdamW(list(self.text.parameters()) + list(self.unet.parameters()), lr=config.lr,
                                           weight_decay=0.0)
        self.scheduler = nets.build_train_scheduler()
        self.rows = train_rows()
        self.drawings, self.data = sources_of(config)
        self._things: dict[int, list[Thing]] = {}
        if not self.resume() and config.init_from:
            self._branch_from(Path(config.init_from) / CHECKPOINT)

    def _branch_from(self, path: Path) -> None:
        import torch

        if not path.is_file():
            raise UserError(f"--init-from {path.parent}: no {CHECKPOINT} there (a shapes ip2p --workdir is needed).")
        state = torch.load(path, map_location="cpu", weights_only=False)
        differ = [f"--{key} {state['config'].get(key)} there, {getattr(self.config, key)} here"
                  for key in ("seed", "batch") if state["config"].get(key) != getattr(self.config, key)]
        if not same_base(state["config"].get("base", ""), self.config.base):
            differ.insert(0, f"--base {state['config'].get('base')} there, {self.config.base} here")
        if differ:
            raise UserError(f"--init-from {path.parent}: that run's base, seed and batch must be this one's; pass "
                            f"the same ({'; '.join(differ)}).")
        self.restore(state)

    def batch_at(self, step: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(instructions with dropped ones "", sources, targets, source-kept flags) for step `step`."""
        rng = np.random.default_rng([self.config.seed, step])
        texts, sources, targets, keep = [], [], [], []
        for _ in range(self.config.batch):
            if len(self.drawings) and rng.random() < self.config.generated_share:
                index = int(rng.integers(len(self.drawings)))
                pixels = self.drawings[index]
                if index not in self._things:
                    self._things[index] = things_of(pixels)
                things = self._things[index]
            else:
                skill = self.rows[int(rng.integers(len(self.rows)))]
                pixels = draw(layout(skill[int(rng.integers(len(skill)))][1], rng))
                things = things_of(pixels)
            text, target = make_triple(pixels, things, rng)
            roll = rng.random()
            texts.append("" if roll < 2 * self.config.dropout else text)
            keep.append(not self.config.dropout <= roll < 3 * self.config.dropout)
            sources.append(pixels)
            targets.append(target)
        return texts, np.stack(sources), np.stack(targets), np.array(keep)

    def loss_at(self, step: int) -> Any:
        import torch

        texts, sources, targets, keep = self.batch_at(step)
        x0 = nets.pack(to_tensor(targets))
        source = nets.pack(to_tensor(sources)) * torch.from_numpy(keep)[:, None, None, None].float()
        gen = torch.Generator().manual_seed(NOISE_BASE + self.config.seed * 1_000_003 + step)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        states, pooled = nets.encode(self.text, nets.tokenize(self.tokenizer, texts))
        noisy = self.scheduler.add_noise(x0, noise, t)
        pred = self.unet(torch.cat([noisy, source], dim=1), t, encoder_hidden_states=states,
                         class_labels=pooled).sample
        return torch.nn.functional.mse_loss(pred, self.scheduler.get_velocity(x0, noise, t))

    def train_step(self) -> float:
        self.set_lr()
        loss = self.optimize(self.loss_at(self.step))
        update_ema(self.step - 1, self.config.ema_decay, ((self.text, self.ema_text), (self.unet, self.ema_unet)))
        return loss

    def trainable_state(self) -> dict[str, Any]:
        return {"text": self.text.state_dict(), "unet": self.unet.state_dict(),
                "ema_text": self.ema_text.state_dict(), "ema_unet": self.ema_unet.state_dict()}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        for name in ("text", "unet", "ema_text", "ema_unet"):
            getattr(self, name).load_state_dict(state[name])

    def export(self, out: str | Path) -> Path:
        """The EMA networks (fp16, as the world's other weights), tokenizer, sampler and a manifest naming the
        drawings' seeds (DESIGN §8)."""
        import torch

        out = Path(out)
        for name, module in (("text_encoder", self.ema_text), ("unet", self.ema_unet)):
            copy.deepcopy(module).to(torch.float16).save_pretrained(out / name)
        self.tokenizer.save_pretrained(out / "tokenizer")
        nets.build_sampler().save_pretrained(out / "scheduler")
        data = self.data or data_record([], seeds.SPLIT_VERSION)
        manifest = {"component": "ip2p", "step": self.step, "train_wall_seconds": round(self.wall_seconds, 1),
                    "config": asdict(self.config), "recent_train_loss": self.history[-1] if self.history else None,
                    "data": {**data, "renders": "train captions, rendered on the fly, seeded by (seed, step)",
                             "training_noise": f"generators seeded from {NOISE_BASE:,}"}}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out
