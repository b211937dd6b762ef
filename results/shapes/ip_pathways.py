"""Which of the UNet's two caption inputs carries a scene? The IP-Adapter reaches the UNet through
cross-attention only, while a caption also feeds the pooled-caption (class) embedding; if the scene
travelled mostly through the pooled input, no adapter could bring it back from tokens alone.

For every val and test caption that names each object's colour (so the caption fixes the scene), the
shipped UNet redraws it with the seeds `eval-ip` uses, three ways: both inputs from the caption,
cross-attention from the caption and the pooled input from the empty caption, and the reverse. Prints
the share whose checker scene equals the caption's. Run from the repo root (about 2 minutes on a core).
"""

from collections import Counter

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel

from imgbench.worlds.shapes import nets
from imgbench.worlds.shapes.ip_eval import REGEN_SEED, names_every_colour, scene
from imgbench.worlds.shapes.tasks import split_prompts
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR

STEPS = 25

torch.set_num_threads(1)
prompts = [p for split in ("val", "test") for p in split_prompts(split) if names_every_colour(p)]
wanted = [Counter((o["color"], o["shape"]) for o in p.metadata["spec"]["objects"] for _ in range(int(o["count"])))
          for p in prompts]
text = CLIPTextModel.from_pretrained(WEIGHTS_DIR / "text_encoder", torch_dtype=torch.float32).eval()
unet = UNet2DConditionModel.from_pretrained(WEIGHTS_DIR / "unet", torch_dtype=torch.float32).eval()
sampler = nets.load_sampler(WEIGHTS_DIR)
tokenizer = nets.load_tokenizer(WEIGHTS_DIR / "tokenizer")
with torch.no_grad():
    caption_states, caption_pooled = nets.encode(text, nets.tokenize(tokenizer, [p.text for p in prompts]))
    empty_states, empty_pooled = nets.encode(text, nets.tokenize(tokenizer, [""] * len(prompts)))


def draw(states: torch.Tensor, pooled: torch.Tensor) -> list[Image.Image]:
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(REGEN_SEED + i))
                     for i in range(len(prompts))])
    sampler.set_timesteps(STEPS)
    with torch.no_grad():
        for t in sampler.timesteps:
            x = sampler.step(unet(x, t, encoder_hidden_states=states, class_labels=pooled).sample, t, x).prev_sample
    pixels = nets.unpack(x).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).numpy())) for p in pixels]


print(f"{len(prompts)} colour-naming val + test captions; share redrawn with the caption's scene")
for name, states, pooled in [("both inputs", caption_states, caption_pooled),
                             ("cross-attention only", caption_states, empty_pooled),
                             ("pooled input only", empty_states, caption_pooled)]:
    hits = [want == scene(image) for want, image in zip(wanted, draw(states, pooled), strict=True)]
    print(f"{name:22s} {sum(hits) / len(hits):.3f}")
