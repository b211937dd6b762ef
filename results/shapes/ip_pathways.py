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

import torch
from colour_naming import draw, prompts, share_back
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel

from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR

torch.set_num_threads(1)
text = CLIPTextModel.from_pretrained(WEIGHTS_DIR / "text_encoder", torch_dtype=torch.float32).eval()
unet = UNet2DConditionModel.from_pretrained(WEIGHTS_DIR / "unet", torch_dtype=torch.float32).eval()
sampler = nets.load_sampler(WEIGHTS_DIR)
tokenizer = nets.load_tokenizer(WEIGHTS_DIR / "tokenizer")
with torch.no_grad():
    caption_states, caption_pooled = nets.encode(text, nets.tokenize(tokenizer, [p.text for p in prompts]))
    empty_states, empty_pooled = nets.encode(text, nets.tokenize(tokenizer, [""] * len(prompts)))

print(f"{len(prompts)} colour-naming val + test captions; share redrawn with the caption's scene")
for name, states, pooled in [("both inputs", caption_states, caption_pooled),
                             ("cross-attention only", caption_states, empty_pooled),
                             ("pooled input only", empty_states, caption_pooled)]:
    print(f"{name:38s} {share_back(draw(unet, sampler, states, pooled))}")
ip_adapter.attach(unet, ip_adapter.fresh_state_dict(unet, image_embed_dim=1))
tokens_back = share_back(draw(unet, sampler, empty_states, empty_pooled, ip_tokens=caption_states))
print(f"{'IP pathway, caption states as tokens':38s} {tokens_back}")
