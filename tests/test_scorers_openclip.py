"""The open_clip → transformers CLIP renaming used by hpsv2 computes exactly what open_clip computes.

open_clip_torch is a test dependency (extra `test`); the scorer itself never imports it.
"""

from __future__ import annotations

import numpy as np
import torch
from scorer_helpers import FIXTURES, clip_tokenizer, images, plain_pixels, prompts, seeded

from imgbench.scorers.clip import OPENAI_MEAN, OPENAI_STD
from imgbench.scorers.hpsv2 import HPSv2
from imgbench.scorers.openclip import VIT_H_14, clip_config, load_openclip_into_hf

TINY = {"embed_dim": 16, "vision": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text": {"context_length": 77, "vocab_size": 579, "width": 32, "heads": 2, "layers": 2}}


def tiny_open_clip(seed: int = 0):
    import open_clip

    def build():
        model = open_clip.model.CLIP(embed_dim=TINY["embed_dim"], vision_cfg=TINY["vision"], text_cfg=TINY["text"])
        for param in model.parameters():  # perturb LayerNorms too, so every tensor's mapping is exercised
            param.data.add_(0.05 * torch.randn_like(param))
        return model.eval()

    return seeded(seed, build)


def test_converted_model_matches_open_clip_features():
    reference = tiny_open_clip()
    model = load_openclip_into_hf(reference.state_dict(), TINY, torch.float32)
    imgs, records = images(3), prompts()[:3]
    tokens = clip_tokenizer()([p.text for p in records], padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt")
    pixels = plain_pixels(imgs, OPENAI_MEAN, OPENAI_STD)
    with torch.no_grad():
        ours = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
        theirs_image = reference.encode_image(pixels, normalize=True)
        theirs_text = reference.encode_text(tokens["input_ids"], normalize=True)
    torch.testing.assert_close(ours.image_embeds, theirs_image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.text_embeds, theirs_text, atol=1e-5, rtol=1e-5)


def test_vit_h_14_config_has_open_clip_parameter_count():
    import open_clip
    from transformers import CLIPModel

    with torch.device("meta"):
        ours = sum(p.numel() for p in CLIPModel(clip_config(VIT_H_14)).parameters())
        theirs = sum(p.numel() for p in open_clip.model.CLIP(embed_dim=VIT_H_14["embed_dim"],
                                                             vision_cfg=VIT_H_14["vision"],
                                                             text_cfg=VIT_H_14["text"]).parameters())
    assert ours == theirs


def test_hpsv2_loads_an_open_clip_checkpoint_file_and_scores_like_open_clip(tmp_path):
    """The real loading path: an HPSv2-format checkpoint ({'state_dict': open_clip tensors}) from disk."""
    reference = tiny_open_clip(seed=3)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "HPS_v2_compressed.pt")

    class TinyHPS(HPSv2):
        arch = TINY

    scorer = TinyHPS(checkpoint_path=str(tmp_path / "HPS_v2_compressed.pt"),
                     processor=str(FIXTURES / "clip_tokenizer"),
                     device="cpu")
    assert scorer.identity()["weights"]["checkpoint"]["revision"].startswith("sha256:")
    imgs, records = images(4, seed=2), prompts()[:4]
    values = [r.value for r in scorer.score(imgs, records)]
    tokens = clip_tokenizer()([p.text for p in records], padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt")
    with torch.no_grad():
        image = reference.encode_image(plain_pixels(imgs, OPENAI_MEAN, OPENAI_STD), normalize=True)
        text = reference.encode_text(tokens["input_ids"], normalize=True)
    np.testing.assert_allclose(values, torch.diagonal(image @ text.T).numpy(), atol=1e-5)
