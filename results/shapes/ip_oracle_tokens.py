"""How far can *any* image encoder take the IP-Adapter on this UNet? Tokens optimised for each source image.

`ip_caption_tokens.py` and the shipped adapter map an image to tokens with a trained network. Here there
is no network: each val render gets its own IP tokens, optimised directly by the adapter's training loss
(reconstruction of that render, empty caption, UNet and adapter layers frozen), starting from the shipped
adapter's tokens for it. No encoder, however rich, can give tokens that reconstruct the render better, so
the share of scenes these tokens bring back (empty caption, `eval-ip`'s new seeds) bounds what the shipped
adapter's layers can reach on the shipped UNet. With `--tokens 16` each source gets 16 tokens (the
shipped four, tiled, plus a little seeded noise so the copies can part), as IP-Adapter Plus gives SDXL.

With `--text-layers W` (the workdir of `ip_text_tokens.py`) the layers are those trained for the caption's
own hidden states, the sources are renders of the colour-naming val + test captions, and the tokens start
from the caption's states: can a render's own pixels improve on the caption's tokens?

Run from the repo root: `python results/shapes/ip_oracle_tokens.py --tokens 4` (18 minutes on a core,
evaluations included; `--tokens 16` the same; `--text-layers results/runs/ip-text-tokens` 21 minutes).
Prints the share brought back every `--every` steps, per skill.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from colour_naming import draw, share_back
from colour_naming import prompts as colour_naming_prompts
from ip_text_tokens import TextTokenTrainer
from PIL import Image

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.ip_eval import scene, share_by_skill, source_images
from imgbench.worlds.shapes.model import ShapesModel
from imgbench.worlds.shapes.render import render
from imgbench.worlds.shapes.resumable import CHECKPOINT
from imgbench.worlds.shapes.tasks import split_prompts
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR
from imgbench.worlds.shapes.train_ip import IPTrainConfig
from imgbench.worlds.shapes.train_unet import to_tensor

LR = 0.02


def optimise(unet: torch.nn.Module, images: list[Image.Image], tokens: torch.Tensor, empty: torch.Tensor,
             empty_pooled: torch.Tensor, steps: int, every: int,
             report: Callable[[int, torch.Tensor], None]) -> None:
    """Adam on the tokens alone, the adapter's v-prediction loss, one seeded noise and timestep per image a step."""
    x0 = nets.pack(to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images])))
    scheduler = nets.build_train_scheduler()
    tokens = torch.nn.Parameter(tokens.clone())
    optimizer = torch.optim.Adam([tokens], lr=LR)
    generator = torch.Generator().manual_seed(0)
    unet.requires_grad_(False)
    ip_adapter.set_scale(unet, 1.0)
    report(0, tokens.detach())
    for step in range(1, steps + 1):
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator)
        with ip_adapter.given_tokens(unet):
            pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=empty, class_labels=empty_pooled,
                        **ip_adapter.ip_kwargs(tokens)).sample
        loss = torch.nn.functional.mse_loss(pred, scheduler.get_velocity(x0, noise, t))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % every == 0:
            report(step, tokens.detach())


def shipped_layers(n_tokens: int, steps: int, every: int) -> None:
    model = ShapesModel()
    parts = model._load()
    unet = parts["unet"]
    prompts = split_prompts("val")
    sources = source_images(model, "renders", prompts)
    kept = [(p, im, s) for p, im, s in zip(prompts, sources, map(scene, sources), strict=True) if s]
    images = [im for _, im, _ in kept]
    with torch.no_grad():
        shipped = model.encode_image(images)
        empty, empty_pooled = nets.encode(parts["text"], nets.tokenize(parts["tokenizer"], [""] * len(kept)))
    tokens = shipped.repeat(1, n_tokens // shipped.shape[1], 1)
    if tokens.shape[1] != shipped.shape[1]:
        jitter = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(1))
        tokens = tokens + 0.1 * shipped.std() * jitter
    sampler = nets.load_sampler(WEIGHTS_DIR)

    def report(step: int, current: torch.Tensor) -> None:
        hits = [want == scene(im) for (_, _, want), im in
                zip(kept, draw(unet, sampler, empty, empty_pooled, ip_tokens=current), strict=True)]
        per_skill = share_by_skill([p for p, _, _ in kept], hits)
        skills = "  ".join(f"{skill} {share:.3f}" for skill, share in per_skill.items())
        print(f"step {step:5d}: {np.mean(hits):.3f}  ({skills})", flush=True)

    print(f"{len(kept)} val renders, {n_tokens} tokens each, shipped adapter layers, empty caption")
    optimise(unet, images, tokens, empty, empty_pooled, steps, every, report)


def text_layers(workdir: Path, steps: int, every: int) -> None:
    if not (workdir / CHECKPOINT).exists():
        raise SystemExit(f"{workdir / CHECKPOINT} is missing: run results/shapes/ip_text_tokens.py first.")
    config = IPTrainConfig(base=str(WEIGHTS_DIR), clip=str(WEIGHTS_DIR / "clip"), caption_dropout=1.0)
    trainer = TextTokenTrainer(config, workdir)
    texts = [p.text for p in colour_naming_prompts]
    with torch.no_grad():
        states, _ = nets.encode(trainer.text, nets.tokenize(trainer.tokenizer, texts))
        empty, empty_pooled = nets.encode(trainer.text, nets.tokenize(trainer.tokenizer, [""] * len(texts)))
    images = [render(p.metadata["spec"], seed) for seed, p in enumerate(colour_naming_prompts)]
    sampler = nets.load_sampler(WEIGHTS_DIR)

    def report(step: int, current: torch.Tensor) -> None:
        print(f"step {step:5d}: {share_back(draw(trainer.unet, sampler, empty, empty_pooled, ip_tokens=current))}",
              flush=True)

    print(f"{len(texts)} renders of the colour-naming val + test captions, text-token layers after {trainer.step} "
          "steps, tokens from the caption's states, empty caption")
    optimise(trainer.unet, images, states, empty, empty_pooled, steps, every, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, choices=(4, 16), default=4)
    parser.add_argument("--text-layers", type=Path, help="ip_text_tokens.py's workdir (instead of the shipped layers)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=250)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    if args.text_layers:
        text_layers(args.text_layers, args.steps, args.every)
    else:
        shipped_layers(args.tokens, args.steps, args.every)
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
