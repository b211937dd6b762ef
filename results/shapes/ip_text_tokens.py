"""Can the IP pathway carry a scene if its tokens are perfect and its layers are trained for them?

`ip_pathways.py` feeds the caption's own hidden states as IP tokens through an *untrained* decoupled
attention (to_k_ip / to_v_ip copies of the text to_k / to_v) and loses a sixth of the one-object scenes
the caption itself brings back. Here the same layers are trained for such tokens, exactly as the
IP-Adapter is trained (reconstruction of train renders, UNet and text encoder frozen, `ip-adapter`'s
seeds and batches), except that the tokens are the caption's hidden states instead of a projection of the
image embedding, and the caption input is always empty. What this adapter brings back is what a perfect
image-to-token mapping could reach through the decoupled attention on the shipped UNet; the shipped
adapter's distance from it is what its image side loses.

Run from the repo root: `python results/shapes/ip_text_tokens.py [--steps 1000] [--workdir DIR]` (about
0.8 s a step and 2 minutes of evaluation on a core; resumable like every trainer). Prints the share of the
colour-naming val + test captions whose checker scene comes back, per skill, with the seeds `eval-ip` and
`ip_pathways.py` use.
"""

import argparse
import logging
from pathlib import Path

import torch
from colour_naming import draw, prompts, share_back

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR
from imgbench.worlds.shapes.train_ip import IPTrainConfig, IPTrainer
from imgbench.worlds.shapes.train_unet import make_batch, to_tensor


class TextTokenTrainer(IPTrainer):
    """IPTrainer whose IP tokens are the full caption's hidden states; the caption input is always empty."""

    def train_step(self) -> float:
        self.set_lr()
        captions, pixels = make_batch(self.rows, self.config.seed, self.step, self.config.batch, dropout=0.0)
        x0 = nets.pack(to_tensor(pixels))
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (x0.shape[0],), generator=gen)
        with torch.no_grad():
            tokens, _ = nets.encode(self.text, nets.tokenize(self.tokenizer, captions))
            empty, empty_pooled = nets.encode(self.text, nets.tokenize(self.tokenizer, [""] * len(captions)))
        with ip_adapter.given_tokens(self.unet):
            pred = self.unet(self.scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=empty,
                             class_labels=empty_pooled, **ip_adapter.ip_kwargs(tokens)).sample
        loss = torch.nn.functional.mse_loss(pred, self.scheduler.get_velocity(x0, noise, t))
        return self.optimize(loss)


def evaluate(trainer: TextTokenTrainer) -> str:
    with torch.no_grad():
        tokens, _ = nets.encode(trainer.text, nets.tokenize(trainer.tokenizer, [p.text for p in prompts]))
        empty, empty_pooled = nets.encode(trainer.text, nets.tokenize(trainer.tokenizer, [""] * len(prompts)))
    images = draw(trainer.unet, nets.load_sampler(WEIGHTS_DIR), empty, empty_pooled, ip_tokens=tokens)
    return f"{len(prompts)} colour-naming val + test captions: {share_back(images)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("results/runs/ip-text-tokens"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    config = IPTrainConfig(base=str(WEIGHTS_DIR), clip=str(WEIGHTS_DIR / "clip"), caption_dropout=1.0)
    trainer = TextTokenTrainer(config, args.workdir)
    trainer.run(args.steps)
    print(f"text-token IP-Adapter after {trainer.step} steps ({trainer.wall_seconds:.0f} s of training), "
          "empty caption, caption states as tokens")
    print(evaluate(trainer))


if __name__ == "__main__":
    main()
