"""Can the image side produce caption-like tokens? An adapter whose projection regresses caption states.

`ip_text_tokens.py` shows that the decoupled attention, trained for the caption's own hidden states as
tokens, brings a scene back as often as the caption does. This script asks whether the image side can
supply such tokens: an MLP projection (IP-Adapter FaceID's layout, which diffusers' loader reads with any
token count) is fitted to map a render's CLIP image embedding to the hidden states of a caption naming
its objects ("a red circle and a blue square"; renders of one or two objects only, since the grammar
names no colours for three or more), and is paired with the text-token attention layers from
`ip_text_tokens.py`'s workdir. It writes a weights folder D (a copy of the shipped weights with this
adapter) for `imgbench train shapes eval-ip --weights D`.

Run from the repo root after `ip_text_tokens.py`: `python results/shapes/ip_caption_tokens.py --out D
[--text-tokens results/runs/ip-text-tokens]` (about a minute on a core).
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPModel, CLIPTextModel

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.clip import image_inputs
from imgbench.worlds.shapes.render import draw, layout
from imgbench.worlds.shapes.resumable import CHECKPOINT
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR
from imgbench.worlds.shapes.train_unet import train_rows

SCENES, HIDDEN, FIT_STEPS, BATCH = 20_000, 256, 4000, 512


def scenes(n: int) -> tuple[list[str], np.ndarray]:
    """Renders of train captions with at most two objects, and a caption naming each object's colour."""
    rows = [row for skill_rows in train_rows() for row in skill_rows]
    rng = np.random.default_rng(0)
    captions, pixels = [], []
    while len(captions) < n:
        _, spec = rows[int(rng.integers(len(rows)))]
        placed = layout(spec, rng)
        if len(placed) <= 2:
            captions.append(" and ".join(f"a {p.color} {p.shape}" for p in placed))
            pixels.append(draw(placed))
    return captions, np.stack(pixels)


def embeddings(captions: list[str], pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    text = CLIPTextModel.from_pretrained(WEIGHTS_DIR / "text_encoder", torch_dtype=torch.float32).eval()
    tokenizer = nets.load_tokenizer(WEIGHTS_DIR / "tokenizer")
    clip = CLIPModel.from_pretrained(WEIGHTS_DIR / "clip").eval()
    inputs = image_inputs(pixels)
    with torch.no_grad():
        states = torch.cat([nets.encode(text, nets.tokenize(tokenizer, captions[i:i + BATCH]))[0]
                            for i in range(0, len(captions), BATCH)])
        images = torch.cat([clip.get_image_features(pixel_values=inputs[i:i + BATCH]).pooler_output
                            for i in range(0, len(captions), BATCH)])
    return images, states


def fit(images: torch.Tensor, states: torch.Tensor) -> dict[str, torch.Tensor]:
    """MLP + LayerNorm (FaceID layout: proj.0, proj.2, norm) fitted by MSE; prints held-out error / variance."""
    torch.manual_seed(0)
    tokens, width = states.shape[1], states.shape[2]
    first, second = torch.nn.Linear(images.shape[1], HIDDEN), torch.nn.Linear(HIDDEN, tokens * width)
    norm = torch.nn.LayerNorm(width)
    params = [*first.parameters(), *second.parameters(), *norm.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)

    def project(x: torch.Tensor) -> torch.Tensor:
        return norm(second(torch.nn.functional.gelu(first(x))).reshape(-1, tokens, width))

    train = int(len(images) * 0.9)
    for _ in range(FIT_STEPS):
        rows = torch.randint(0, train, (BATCH,))
        loss = torch.nn.functional.mse_loss(project(images[rows]), states[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        held_out = torch.nn.functional.mse_loss(project(images[train:]), states[train:])
    print(f"held-out error {float(held_out):.4f} against a variance of {float(states[train:].var()):.4f}")
    return {"proj.0.weight": first.weight, "proj.0.bias": first.bias, "proj.2.weight": second.weight,
            "proj.2.bias": second.bias, "norm.weight": norm.weight, "norm.bias": norm.bias}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--text-tokens", type=Path, default=Path("results/runs/ip-text-tokens"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = args.text_tokens / CHECKPOINT
    if not checkpoint.exists():
        raise SystemExit(f"{checkpoint} is missing: run results/shapes/ip_text_tokens.py first.")
    adapter = torch.load(checkpoint, map_location="cpu", weights_only=False)["adapter"]
    adapter["image_proj"] = {k: v.detach().clone() for k, v in fit(*embeddings(*scenes(SCENES))).items()}
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(WEIGHTS_DIR, args.out)
    save_file(ip_adapter.flatten(adapter), args.out / "ip_adapter" / "ip_adapter.safetensors")
    manifest = {"component": "ip-adapter", "experiment": "results/shapes/ip_caption_tokens.py",
                "attention_layers_from": str(checkpoint), "projection": "FaceID-layout MLP fitted to caption states",
                "scenes": SCENES, "hidden": HIDDEN, "fit_steps": FIT_STEPS}
    (args.out / "ip_adapter" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {args.out}; now: imgbench train shapes eval-ip --weights {args.out}")


if __name__ == "__main__":
    main()
