"""IP-Adapter token-level control (DESIGN §4): encode → tokens → generate with tokens at a scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_support import make_model, max_diff, requests
from PIL import Image

from imgbench.errors import UserError

IP_FAMILIES = [("sdxl", (16, 64)), ("flux-dev", (4, 32))]


def _reference_images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("kind, shape", IP_FAMILIES)
def test_ip_tokens_round_trip(kind, shape):
    batch = requests()
    plain = make_model(kind, ip=False).generate(batch)  # a pipeline that never loaded the adapter
    model = make_model(kind)
    tokens = model.encode_image(_reference_images())
    assert tuple(tokens.shape) == (3, *shape) and tokens.dtype == torch.float32
    assert model.image_token_shape == shape
    # tokens at scale 0 reproduce generation without IP exactly
    at_zero = model.generate(batch, image_tokens=tokens, ip_scale=0.0)
    assert all(max_diff(a, b) == 0 for a, b in zip(at_zero, plain, strict=True))
    # and so does "no tokens" once the adapter is loaded
    assert all(max_diff(a, b) == 0 for a, b in zip(model.generate(batch), plain, strict=True))
    # scale > 0 changes every image
    guided = model.generate(batch, image_tokens=tokens, ip_scale=0.8)
    assert all(max_diff(a, b) > 8 for a, b in zip(guided, plain, strict=True))
    # each request reads its own tokens: a batch equals the requests run one at a time
    for i in range(3):
        alone = model.generate([batch[i]], image_tokens=tokens[i:i + 1], ip_scale=0.8)[0]
        assert max_diff(alone, guided[i]) <= 1
    # tokens may also be a list of arrays (e.g. an aligner's output moved to numpy)
    as_list = model.generate(batch[:1], image_tokens=[tokens[0].numpy()], ip_scale=0.8)[0]
    assert max_diff(as_list, guided[0]) <= 1


@pytest.mark.parametrize("kind", ["sdxl", "flux-dev"])
def test_different_tokens_give_different_images_and_encoding_is_deterministic(kind):
    model = make_model(kind)
    refs = _reference_images(2)
    tokens = model.encode_image(refs)
    assert torch.equal(tokens, model.encode_image(refs))
    assert not torch.allclose(tokens[0], tokens[1])
    one = requests()[:1] * 2
    images = model.generate(one, image_tokens=tokens, ip_scale=1.0)
    assert max_diff(images[0], images[1]) > 0


def test_sdxl_uncond_tokens_follow_the_official_code():
    """IP-Adapter Plus: the negative branch encodes an all-zero tensor after CLIP normalisation, then the resampler."""
    model = make_model("sdxl")
    adapter = model.ip_adapter
    pipe = model.pipeline
    size = pipe.image_encoder.config.image_size
    with torch.inference_mode():
        hidden = pipe.image_encoder(torch.zeros(1, 3, size, size), output_hidden_states=True).hidden_states[-2]
        expected = adapter.projection.image_projection_layers[0](hidden)
    assert torch.allclose(adapter.uncond_tokens(), expected, atol=1e-6)
    # a black *image* is not the same thing (CLIP normalisation maps black to non-zero values)
    black = adapter.encode([Image.new("RGB", (size, size))])
    assert not torch.allclose(black, adapter.uncond_tokens())


def test_flux_uncond_tokens_are_the_projection_of_a_black_image():
    model = make_model("flux-dev")
    adapter = model.ip_adapter
    black = adapter.encode([Image.new("RGB", (48, 48))])
    assert torch.allclose(adapter.uncond_tokens(), black, atol=1e-6)


def test_token_misuse_is_reported():
    model = make_model("sdxl")
    batch = requests()
    tokens = model.encode_image(_reference_images(3))
    with pytest.raises(ValueError, match="one entry per request"):
        model.generate(batch[:2], image_tokens=tokens, ip_scale=0.5)
    with pytest.raises(ValueError, match="no image_tokens"):
        model.generate(batch, ip_scale=0.5)
    for no_ip in (make_model("sd15"), make_model("flux-schnell"), make_model("sdxl", ip=False)):
        assert not no_ip.supports_image_tokens
        with pytest.raises(UserError, match="no IP-Adapter"):
            no_ip.encode_image(_reference_images(1))
        with pytest.raises(UserError, match="no IP-Adapter"):
            no_ip.generate(batch[:1], image_tokens=tokens[:1], ip_scale=0.5)
