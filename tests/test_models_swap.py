"""Preference-finetuned releases are the base pipeline with a swapped UNet (DESIGN §2)."""

from __future__ import annotations

import torch
from models_support import folders, make_model, max_diff, requests


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_unet_swap_changes_images_and_shares_everything_else():
    base = make_model("sdxl")
    dpo = make_model("sdxl", unet_path=str(folders()["sdxl-dpo-unet"]))
    batch = requests()[:2]
    base_images, dpo_images = base.generate(batch), dpo.generate(batch)
    assert all(max_diff(a, b) > 8 for a, b in zip(base_images, dpo_images, strict=True))
    # the rest of the pipeline is the base's, weight for weight
    for name in ("vae", "text_encoder", "text_encoder_2"):
        a, b = _state(getattr(base.pipeline, name)), _state(getattr(dpo.pipeline, name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert not torch.equal(base.pipeline.unet.conv_in.weight, dpo.pipeline.unet.conv_in.weight)
    # the swapped weights are part of the identity, the base weights are the same
    assert dpo.identity()["weights"]["pipeline"] == base.identity()["weights"]["pipeline"]
    assert "unet" in dpo.identity()["weights"] and "unet" not in base.identity()["weights"]


def test_ip_adapter_loads_after_the_swap_onto_the_swapped_unet():
    dpo = make_model("sdxl", unet_path=str(folders()["sdxl-dpo-unet"]))
    swapped_conv = dpo.pipeline.unet.conv_in.weight.clone()
    tokens = dpo.encode_image(dpo.generate(requests()[:1]))
    assert torch.equal(dpo.pipeline.unet.conv_in.weight, swapped_conv)
    assert dpo.pipeline.unet.encoder_hid_proj is not None
    guided = dpo.generate(requests()[:1], image_tokens=tokens, ip_scale=0.7)[0]
    assert max_diff(guided, dpo.generate(requests()[:1])[0]) > 0
