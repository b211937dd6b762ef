"""Training the shapes IP-Adapter by reconstruction (Ye et al., 2023, §3.3), base model and encoder frozen.

A render's own CLIP image embedding conditions the denoising of that render; the caption is
dropped half of the time, so the tokens alone must carry the scene (what IMG and the acceptance
check — regenerate a scene from its tokens with an empty caption — rely on). Steps are seeded
by (seed, step) like the other trainers, so resuming reproduces an uninterrupted run.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.resumable import ResumableTrainer
from imgbench.worlds.shapes.train_unet import make_batch, to_tensor, train_rows


@dataclass
class IPTrainConfig:
    base: str
    """Folder of the frozen text encoder + UNet (a snapshot or the shipped weights)."""
    clip: str
    """Folder of the frozen contrastive CLIP whose vision tower is the image encoder."""
    seed: int = 0
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    caption_dropout: float = 0.5
    image_dropout: float = 0.05
    """Share of rows trained with a zero image embedding: the unconditional CFG branch gets exactly those
    tokens at inference, so the adapter must see them (IP-Adapter drops the image 5% of the time, Ye et al. §3.3)."""
    high_noise_share: float = 0.0
    """Share of rows whose timestep is drawn from the noisier half of the schedule instead of all of it: the
    scene (which shapes, how many, where) is decided at high noise, and the tokens must carry the scene."""
    anneal_from: int = 0
    anneal_steps: int = 0
    """Cosine-anneal the learning rate to 0 over `anneal_steps` steps from step `anneal_from` (0: constant), as
    the UNet's last phase does: a constant rate leaves the adapter's weights noisy."""


def drop_image_embeds(embeds: Any, rate: float, generator: Any) -> Any:
    """Zero the image embedding of a seeded `rate` share of rows (the unconditional branch's input)."""
    import torch

    keep = torch.rand(embeds.shape[0], generator=generator) >= rate
    return embeds * keep[:, None].to(embeds.dtype)


def bias_to_high_noise(t: Any, share: float, num_train_timesteps: int, generator: Any) -> Any:
    """Move a seeded `share` of the timesteps into the upper half of the schedule (t → T/2 + t/2); share 0
    draws nothing, so runs without the bias stay bit-identical to those trained before it existed."""
    import torch

    if not share:
        return t
    high = torch.rand(t.shape[0], generator=generator) < share
    return torch.where(high, num_train_timesteps // 2 + t // 2, t)


def load_frozen(config: IPTrainConfig) -> tuple[Any, Any, Any, Any]:
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel

    base = Path(config.base)
    for needed in (base / "unet", base / "text_encoder", Path(config.clip) / "model.safetensors"):
        if not needed.exists():
            raise UserError(f"{needed} is missing: train the UNet and the CLIP first (imgbench train shapes --help).")
    text = CLIPTextModel.from_pretrained(base / "text_encoder", torch_dtype=torch.float32).eval()
    unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=torch.float32)
    clip = CLIPModel.from_pretrained(config.clip).eval()
    for module in (text, unet, clip):
        module.requires_grad_(False)
    return nets.load_tokenizer(base / "tokenizer"), text, unet, clip


class IPTrainer(ResumableTrainer):
    def __init__(self, config: IPTrainConfig, workdir: str | Path) -> None:
        import torch

        super().__init__(config, workdir)
        self.tokenizer, self.text, self.unet, self.clip = load_frozen(config)
        embed_dim = self.clip.config.projection_dim
        ip_adapter.attach(self.unet, ip_adapter.fresh_state_dict(self.unet, embed_dim, config.seed))
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=0.0)
        self.scheduler = nets.build_train_scheduler()
        self.rows = train_rows()
        self.resume()

    def train_step(self) -> float:
        import torch

        self.set_lr()
        captions, pixels = make_batch(self.rows, self.config.seed, self.step, self.config.batch,
                                      self.config.caption_dropout)
        images = to_tensor(pixels)
        x0 = nets.pack(images)
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
        noise = torch.randn(x0.shape, generator=gen)
        steps = self.scheduler.config.num_train_timesteps
        t = bias_to_high_noise(torch.randint(0, steps, (x0.shape[0],), generator=gen), self.config.high_noise_share,
                               steps, gen)
        with torch.no_grad():
            states, pooled = nets.encode(self.text, nets.tokenize(self.tokenizer, captions))
            embeds = drop_image_embeds(self.clip.get_image_features(pixel_values=images).pooler_output,
                                       self.config.image_dropout, gen)
        noisy = self.scheduler.add_noise(x0, noise, t)
        pred = self.unet(noisy, t, encoder_hidden_states=states, class_labels=pooled,
                         added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        loss = torch.nn.functional.mse_loss(pred, self.scheduler.get_velocity(x0, noise, t))
        return self.optimize(loss)

    def trainable_state(self) -> dict[str, Any]:
        return {"adapter": ip_adapter.state_dict_of(self.unet)}

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        import torch

        ip_adapter.attach(self.unet, state["adapter"])  # fresh modules: the optimizer must follow them
        self.params = [p for p in self.unet.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=self.config.lr, weight_decay=0.0)

    def export(self, out: str | Path) -> Path:
        """Write ip_adapter/ip_adapter.safetensors (official layout, flattened) and image_encoder/ into `out`."""
        import json

        from safetensors.torch import save_file

        out = Path(out)
        (out / "ip_adapter").mkdir(parents=True, exist_ok=True)
        flat = ip_adapter.flatten(ip_adapter.state_dict_of(self.unet))
        save_file(flat, out / "ip_adapter" / "ip_adapter.safetensors")
        if (out / "image_encoder").exists():
            shutil.rmtree(out / "image_encoder")
        shutil.copytree(self.config.clip, out / "image_encoder")
        manifest = {"component": "ip-adapter", "step": self.step, "train_wall_seconds": round(self.wall_seconds, 1),
                    "config": asdict(self.config), "recent_train_loss": self.history[-1] if self.history else None}
        (out / "ip_adapter" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return out
