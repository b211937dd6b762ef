"""The shapes world's CLIP: an image encoder trained contrastively against a text tower.

A transformers `CLIPModel` at a tiny config (ViT on 4×4 patches of the 32×32 canvas), trained
with the symmetric InfoNCE loss of CLIP (Radford et al., 2021, §2.3) on renders and their train
captions. It gives the learned scorer `shapes-clip` (CLIPScore, Hessel et al., 2021: 2.5·max(cos, 0))
and is the image encoder an IP-Adapter can build on. Like the UNet trainer, every draw of step k
is seeded by (seed, k), so resuming reproduces an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgbench.worlds.shapes import nets
from imgbench.worlds.shapes.resumable import ResumableTrainer
from imgbench.worlds.shapes.train_unet import make_batch, to_tensor, train_rows

VISION_CONFIG: dict[str, Any] = {"image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_size": 128,
                                 "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4}
PROJECTION_DIM = 64
#: 8×8 patches (16 tokens): 4× cheaper than 4×4 on a CPU, and shapes of 7–11 px still fall in one or two.


@dataclass
class ClipTrainConfig:
    seed: int = 0
    batch: int = 128
    lr: float = 5e-4
    warmup: int = 100
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)


def build_clip(vocab_size: int, vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None) -> Any:
    from transformers import CLIPConfig, CLIPModel

    text_config = {**nets.TEXT_CONFIG, **(text or {}), "vocab_size": vocab_size, "pad_token_id": nets.PAD_ID,
                   "bos_token_id": nets.BOS_ID, "eos_token_id": nets.EOS_ID}
    config = CLIPConfig(text_config=text_config, vision_config={**VISION_CONFIG, **(vision or {})},
                        projection_dim=PROJECTION_DIM)
    return CLIPModel(config)


def image_inputs(pixels: Any) -> Any:
    """uint8 (B, 32, 32, 3) numpy → pixel_values in [-1, 1] (no resize: the canvas is the input size)."""
    return to_tensor(pixels)


class ClipTrainer(ResumableTrainer):
    def __init__(self, config: ClipTrainConfig, workdir: str | Path) -> None:
        import torch

        super().__init__(config, workdir)
        self.tokenizer = nets.build_tokenizer()
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.model = build_clip(len(self.tokenizer), config.vision, config.text)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=0.0)
        self.rows = train_rows()
        self.resume()

    def train_step(self) -> float:
        import torch

        self.set_lr()
        captions, pixels = make_batch(self.rows, self.config.seed, self.step, self.config.batch, dropout=0.0)
        out = self.model(input_ids=nets.tokenize(self.tokenizer, captions), pixel_values=image_inputs(pixels))
        # Several images in a batch can share a caption's meaning; only exact duplicates count as positives.
        same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32)
        targets = same / same.sum(1, keepdim=True)
        loss = (torch.nn.functional.cross_entropy(out.logits_per_image, targets)
                + torch.nn.functional.cross_entropy(out.logits_per_text, targets)) / 2
        return self.optimize(loss)

    def export(self, out: str | Path) -> Path:
        import json

        out = Path(out)
        self.model.save_pretrained(out)
        self.tokenizer.save_pretrained(out / "tokenizer")
        manifest = {"component": "clip", "step": self.step, "train_wall_seconds": round(self.wall_seconds, 1),
                    "config": asdict(self.config), "recent_train_loss": self.history[-1] if self.history else None,
                    "data": "train split captions with renders seeded by (seed, step)"}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out
