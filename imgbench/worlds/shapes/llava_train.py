"""Training `shapes-llava` (edit instructions from checker diffs) and `shapes-llava-base` (captions only).

Next-token loss on the answer only, over examples from `llava_data` drawn with generators seeded
by (seed, step), so resuming reproduces an uninterrupted run, like the world's other trainers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.errors import UserError
from imgbench.provenance import data_record
from imgbench.worlds.shapes import llava, llava_generated, seeds
from imgbench.worlds.shapes.llava_data import example
from imgbench.worlds.shapes.resumable import ResumableTrainer
from imgbench.worlds.shapes.train_unet import train_rows


@dataclass
class LlavaTrainConfig:
    base: bool = False
    """Caption-only training (`shapes-llava-base`, the paper's "original MLLM" ablation)."""
    clip: str = ""
    """Contrastive CLIP folder whose vision tower initialises LLaVA's (empty: random init)."""
    seed: int = 0
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    generated: str = ""
    """An .npz of the shapes model's drawings with their fixing instructions (`llava_generated.build`)."""
    generated_share: float = 0.5
    """Share of each batch drawn from `generated` (the rest: renders with one injected error)."""


class LlavaTrainer(ResumableTrainer):
    def __init__(self, config: LlavaTrainConfig, workdir: str | Path) -> None:
        import torch

        super().__init__(config, workdir)
        self.tokenizer = llava.build_tokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.model = llava.build_llava(len(self.tokenizer), config.vision, config.text)
        if config.clip:
            from transformers import CLIPModel

            clip = CLIPModel.from_pretrained(config.clip)
            self.model.model.vision_tower.load_state_dict(clip.vision_model.state_dict())
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        self.rows = [r for skill in train_rows() for r in skill]
        if config.base and config.generated:
            raise UserError("shapes-llava-base only captions renders; --generated is for the instruction model.")
        self.generated = llava_generated.load(config.generated) if config.generated else None
        self.data = self.data_record()  # before training: drawings without a seed record are refused now
        self.resume()

    def batch(self, step: int) -> dict[str, Any]:
        import torch

        rng = np.random.default_rng([self.config.seed, step])
        pixels, sequences, labels = [], [], []
        for _ in range(self.config.batch):
            if self.generated is not None and rng.random() < self.config.generated_share:
                index = int(rng.integers(len(self.generated[1])))
                image, question, answer = (part[index] for part in self.generated)
            else:
                caption, spec = self.rows[int(rng.integers(len(self.rows)))]
                image, question, answer = example(caption, spec, rng, base=self.config.base)
            prefix = llava.prefix_ids(self.tokenizer, question)
            target = self.tokenizer(answer, add_special_tokens=False).input_ids + [llava.EOS_ID]
            pixels.append(image)
            sequences.append(prefix + target)
            labels.append([-100] * len(prefix) + target)
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), llava.PAD_ID)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        label = torch.full((len(sequences), width), -100)
        for i, (seq, lab) in enumerate(zip(sequences, labels, strict=True)):
            ids[i, :len(seq)], mask[i, :len(seq)], label[i, :len(lab)] = torch.tensor(seq), 1, torch.tensor(lab)
        return {"input_ids": ids, "attention_mask": mask, "labels": label,
                "pixel_values": llava.pixel_values(np.stack(pixels))}

    def train_step(self) -> float:

        self.set_lr()
        loss = self.model(**self.batch(self.step)).loss
        return self.optimize(loss)

    def data_record(self) -> dict[str, Any]:
        """What the part saw: renders come from the renderer's own RNG (no diffusion noise, so no seeds);
        generated drawings carry the seeds `llava-data` drew them with (DESIGN §8)."""
        renders = "train captions; renders with one error (renderer RNG seeded by (seed, step)), target = the fix"
        if self.generated is None:
            return data_record([], seeds.SPLIT_VERSION, renders=renders)
        drawn = llava_generated.data_of(self.config.generated)
        return {**drawn, "renders": renders, "generated": self.config.generated,
                "generated_share": self.config.generated_share}

    def export(self, out: str | Path) -> Path:
        out = Path(out)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out / "tokenizer")
        manifest = {"component": "llava-base" if self.config.base else "llava", "step": self.step,
                    "train_wall_seconds": round(self.wall_seconds, 1), "config": asdict(self.config),
                    "recent_train_loss": self.history[-1] if self.history else None,
                    "data": self.data}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out
