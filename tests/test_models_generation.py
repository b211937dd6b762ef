"""Every diffusers family, built from real classes at tiny configs: images, determinism, text encoding."""

from __future__ import annotations

import pytest
import torch
from models_support import make_model, max_diff, requests
from PIL import Image

from imgbench.errors import UserError

FAMILIES = ["sd15", "sdxl", "flux-dev", "flux-schnell"]


@pytest.mark.parametrize("kind", FAMILIES)
def test_generates_pil_images_of_the_requested_size_independent_of_batch(kind):
    model = make_model(kind, ip=False)
    batch = requests(size=32)
    images = model.generate(batch)
    assert [type(im) for im in images] == [Image.Image] * 3
    assert all(im.size == (32, 32) and im.mode == "RGB" for im in images)
    assert max_diff(images[0], images[1]) > 0, "different prompts and seeds must give different images"
    # (prompt, seed) → image does not depend on batch size or position (one CPU generator per image);
    # batching may only change float rounding in the last bit of a pixel.
    alone = model.generate([batch[2]])[0]
    reordered = model.generate([batch[2], batch[0]])
    assert max_diff(alone, images[2]) <= 1
    assert max_diff(reordered[0], images[2]) <= 1 and max_diff(reordered[1], images[0]) <= 1
    # the global RNG is never touched
    state = torch.random.get_rng_state()
    model.generate([batch[0]])
    assert torch.equal(state, torch.random.get_rng_state())


def test_rectangular_sizes_and_mixed_sizes_in_one_batch():
    model = make_model("sdxl", ip=False)
    square, wide = requests(size=32)[0], requests(size=32)[1]
    wide = type(wide)(prompt=wide.prompt, seed=wide.seed, height=32, width=48)
    images = model.generate([square, wide])
    assert images[0].size == (32, 32) and images[1].size == (48, 32)


def test_size_not_multiple_of_the_latent_grid_is_a_user_error():
    model = make_model("flux-schnell")
    bad = requests(size=34)[:1]  # FLUX packs 2x2 latents: multiples of 2 * vae_scale_factor (4 here)
    with pytest.raises(UserError, match="multiple of 4"):
        model.generate(bad)


@pytest.mark.parametrize("kind, shape", [("sd15", (2, 77, 32)), ("sdxl", (2, 77, 64)), ("flux-dev", (2, 32, 32))])
def test_encode_text_returns_the_per_token_states_the_denoiser_reads(kind, shape):
    model = make_model(kind, ip=False)
    embeds = model.encode_text(["a red cat", "two dogs"])
    assert tuple(embeds.shape) == shape and embeds.dtype == torch.float32
    assert not torch.equal(embeds[0], embeds[1])


def test_identity_names_everything_that_changes_pixels_and_nothing_else():
    base = make_model("sdxl").identity()
    assert base["dtype"] == "fp32" and base["device_type"] == "cpu" and base["steps"] == 2
    assert base["weights"]["pipeline"]["path_digest"]
    assert base["lazy_weights"]["ip_adapter"]["path_digest"]
    assert make_model("sdxl", steps=3).identity() != base
    assert make_model("sdxl", guidance=7.0).identity() != base
    assert make_model("sdxl", scheduler="DDIMScheduler").identity() != base
    # offload / slicing change memory and speed only
    assert make_model("sdxl", attention_slicing=True).identity() == base


def test_scheduler_swap_changes_images_and_unknown_scheduler_is_a_user_error():
    batch = requests()[:1]
    euler = make_model("sdxl", ip=False).generate(batch)[0]
    ddim = make_model("sdxl", ip=False, scheduler="DDIMScheduler").generate(batch)[0]
    assert max_diff(euler, ddim) > 0
    with pytest.raises(UserError, match="unknown scheduler"):
        make_model("sdxl", ip=False, scheduler="NoSuchScheduler").generate(batch)


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="CUDA"):
        make_model("sd15", cpu_offload=True)
    with pytest.raises(UserError, match="dtype"):
        make_model("sd15", dtype="fp8")
    with pytest.raises(UserError, match="steps"):
        make_model("sd15", steps=0)
