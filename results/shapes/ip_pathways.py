"""Which of the UNet's two caption inputs carries a scene? The IP-Adapter reaches the UNet through
cross-attention only, while a caption also feeds the pooled-caption (class) embedding; if the scene
travelled mostly through the pooled input, no adapter could bring it back from tokens alone.

For every val and test caption that names each object's colour (so the caption fixes the scene), the
shipped UNet redraws it with the seeds `eval-ip` uses, three ways: both inputs from the caption,
cross-attention from the caption and the pooled input from the empty caption, and the reverse; and a
fourth way, the IP pathway with perfect tokens: an empty caption, and the caption's own hidden states fed
as IP tokens through a fresh adapter whose to_k_ip / to_v_ip are copies of the text to_k / to_v (how
IP-Adapter training starts), so the decoupled attention adds attention over the caption to the attention
over the empty caption. Prints the share whose checker scene equals the caption's, overall and per skill.
Run from the repo root (about 3 minutes on a core).
"""

from collections import Counter
from contextlib import nullcontext

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.grammar import fixes_scene
from imgbench.worlds.shapes.ip_eval import REGEN_SEED, scene
from imgbench.worlds.shapes.tasks import split_prompts
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR

STEPS = 25

torch.set_num_threads(1)
prompts = [p for split in ("val", "test") for p in split_prompts(split) if fixes_scene(p.metadata["spec"])]
wanted = [Counter((o["color"], o["shape"]) for o in p.metadata["spec"]["objects"] for _ in range(int(o["count"])))
          for p in prompts]
text = CLIPTextModel.from_pretrained(WEIGHTS_DIR / "text_encoder", torch_dtype=torch.float32).eval()
unet = UNet2DConditionModel.from_pretrained(WEIGHTS_DIR / "unet", torch_dtype=torch.float32).eval()
sampler = nets.load_sampler(WEIGHTS_DIR)
tokenizer = nets.load_tokenizer(WEIGHTS_DIR / "tokenizer")
with torch.no_grad():
    caption_states, caption_pooled = nets.encode(text, nets.tokenize(tokenizer, [p.text for p in prompts]))
    empty_states, empty_pooled = nets.encode(text, nets.tokenize(tokenizer, [""] * len(prompts)))


def draw(states: torch.Tensor, pooled: torch.Tensor, ip_tokens: torch.Tensor | None = None) -> list[Image.Image]:
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(REGEN_SEED + i))
                     for i in range(len(prompts))])
    extra = {} if ip_tokens is None else ip_adapter.ip_kwargs(ip_tokens)
    sampler.set_timesteps(STEPS)
    with torch.no_grad(), ip_adapter.given_tokens(unet) if ip_tokens is not None else nullcontext():
        for t in sampler.timesteps:
            v = unet(x, t, encoder_hidden_states=states, class_labels=pooled, **extra).sample
            x = sampler.step(v, t, x).prev_sample
    pixels = nets.unpack(x).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).numpy())) for p in pixels]


def report(name: str, images: list[Image.Image]) -> None:
    hits = [want == scene(image) for want, image in zip(wanted, images, strict=True)]
    per_skill: dict[str, list[bool]] = {}
    for prompt, hit in zip(prompts, hits, strict=True):
        per_skill.setdefault(prompt.tags[0], []).append(hit)
    by_skill = "  ".join(f"{skill} {np.mean(skill_hits):.3f}" for skill, skill_hits in sorted(per_skill.items()))
    print(f"{name:38s} {np.mean(hits):.3f}  ({by_skill})")


print(f"{len(prompts)} colour-naming val + test captions; share redrawn with the caption's scene")
report("both inputs", draw(caption_states, caption_pooled))
report("cross-attention only", draw(caption_states, empty_pooled))
report("pooled input only", draw(empty_states, caption_pooled))
ip_adapter.attach(unet, ip_adapter.fresh_state_dict(unet, image_embed_dim=1))
report("IP pathway, caption states as tokens", draw(empty_states, empty_pooled, ip_tokens=caption_states))
