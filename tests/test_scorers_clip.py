"""CLIP-family scorers (clipscore, pickscore, hpsv2, hpsv2.1, aesthetic) on tiny injected CLIP models.

Each value is recomputed here from the backbone's raw outputs (CLIPModel.forward's image_embeds /
text_embeds, which transformers already L2-normalises) with plain torch, not via imgbench.scorers.clip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scorer_helpers import check_contract, clip_tokenizer, images, plain_pixels, prompts, seeded, tiny_clip_parts

from imgbench.scorers.clip import OPENAI_MEAN, OPENAI_STD


def raw_cosines(parts, imgs, records):
    tokens = clip_tokenizer()([p.text for p in records], padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt")
    with torch.no_grad():
        out = parts.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                          pixel_values=plain_pixels(imgs, OPENAI_MEAN, OPENAI_STD))
    return (out.image_embeds * out.text_embeds).sum(-1)


def test_clipscore_formula_range_batch_and_direction():
    from imgbench.scorers.clipscore import CLIPScore

    parts = tiny_clip_parts(seed=1)
    scorer = CLIPScore(backbone=lambda: parts, device="cpu")
    imgs, records = images(5, seed=3), prompts()
    results = check_contract(scorer, imgs, records)
    cosine = raw_cosines(parts, imgs, records)
    np.testing.assert_allclose([r.value for r in results], (100 * cosine.clamp(min=0)).numpy(), atol=1e-4)
    np.testing.assert_allclose([r.details["cosine"] for r in results], cosine.numpy(), atol=1e-6)
    # Direction: higher score = more similar; on pairs with positive cosine the order follows the cosine.
    positive = [i for i, c in enumerate(cosine.tolist()) if c > 0]
    assert sorted(positive, key=lambda i: results[i].value) == sorted(positive, key=lambda i: cosine[i].item())
    assert scorer.higher_is_better and scorer.value_range == (0.0, 100.0)


def test_clipscore_reports_truncation_and_can_refuse_long_prompts():
    from imgbench.errors import UserError
    from imgbench.scorers.clipscore import CLIPScore

    long_text = " ".join(["a red cat"] * 40)  # 120 words > 77 tokens
    records = prompts([long_text, "a cat"])
    results = CLIPScore(backbone=tiny_clip_parts(), device="cpu").score(images(2), records)
    assert results[0].details["truncated"] is True and results[0].details["text_tokens"] > 77
    assert results[1].details["truncated"] is False
    with pytest.raises(UserError, match="more than the text encoder's 77"):
        CLIPScore(backbone=tiny_clip_parts(), device="cpu", long_prompts="error").score(images(2), records)


def test_pickscore_is_logit_scale_times_cosine():
    from imgbench.scorers.pickscore import PickScore

    parts = tiny_clip_parts(seed=2)
    with torch.no_grad():
        parts.model.logit_scale.fill_(np.log(50.0))
    scorer = PickScore(backbone=parts, device="cpu")
    imgs, records = images(5, seed=4), prompts()
    results = check_contract(scorer, imgs, records)
    tokens = clip_tokenizer()([p.text for p in records], padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt")
    with torch.no_grad():
        out = parts.model(**tokens, pixel_values=plain_pixels(imgs, OPENAI_MEAN, OPENAI_STD))
    expected = torch.diagonal(out.logits_per_image)  # transformers: logit_scale.exp() * cos
    np.testing.assert_allclose([r.value for r in results], expected.numpy(), rtol=1e-5, atol=1e-4)
    order = np.argsort([r.value for r in results])
    assert list(order) == list(np.argsort(expected.numpy()))


@pytest.mark.parametrize("cls_name", ["HPSv2", "HPSv21"])
def test_hpsv2_is_plain_cosine_and_versions_never_share_a_name(cls_name):
    from imgbench.scorers import hpsv2

    cls = getattr(hpsv2, cls_name)
    parts = tiny_clip_parts(seed=5, resize="pad")
    scorer = cls(backbone=parts, device="cpu")
    imgs, records = images(5, seed=6), prompts()
    results = check_contract(scorer, imgs, records)
    np.testing.assert_allclose([r.value for r in results], raw_cosines(parts, imgs, records).numpy(), atol=1e-5)
    assert hpsv2.HPSv2.name == "hpsv2" and hpsv2.HPSv21.name == "hpsv2.1"
    assert hpsv2.HPSv2.checkpoint != hpsv2.HPSv21.checkpoint


def test_hpsv2_pad_recipe_matches_hpsv2_preprocess_on_a_non_square_image():
    """HPSv2's preprocess_val: ToTensor → resize long side (bicubic, antialias) → zero pad → normalise."""
    import torch.nn.functional as F
    from PIL import Image

    from imgbench.scorers.clip import pixel_values

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8))
    ours = pixel_values([image], 32, OPENAI_MEAN, OPENAI_STD, resize="pad")
    tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    resized = F.interpolate(tensor, size=(20, 32), mode="bicubic", antialias=True)  # round(40*0.5), 64*0.5
    padded = torch.zeros(1, 3, 32, 32)
    padded[:, :, 6:26, :] = resized
    expected = (padded - torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours, expected)


def test_crop_recipe_matches_torchvision_resize_and_centre_crop():
    from PIL import Image
    from torchvision import transforms

    from imgbench.scorers.clip import pixel_values

    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 75, 3), dtype=np.uint8))
    reference = transforms.Compose([transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
                                    transforms.CenterCrop(32), transforms.ToTensor(),
                                    transforms.Normalize(OPENAI_MEAN, OPENAI_STD)])
    torch.testing.assert_close(pixel_values([image], 32, OPENAI_MEAN, OPENAI_STD), reference(image)[None])


def test_aesthetic_is_the_mlp_on_the_normalised_image_embedding():
    from imgbench.scorers.aesthetic import Aesthetic, AestheticParts, aesthetic_head

    parts = tiny_clip_parts(seed=7)
    head = seeded(8, lambda: aesthetic_head(16).eval())
    scorer = Aesthetic(backbone=AestheticParts(clip=parts, head=head), device="cpu")
    imgs = images(5, seed=9)
    results = check_contract(scorer, imgs, prompts())
    with torch.no_grad():
        embeds = parts.model(input_ids=torch.tensor([[0, 1]]), pixel_values=plain_pixels(imgs, OPENAI_MEAN,
                                                                                          OPENAI_STD)).image_embeds
        x = embeds
        for index in (0, 2, 4, 6, 7):  # the Linear layers; dropouts are identities in eval
            x = x @ head[index].weight.T + head[index].bias
    np.testing.assert_allclose([r.value for r in results], x.squeeze(-1).numpy(), rtol=1e-5, atol=1e-5)
    # The prompt is ignored: same image, other prompt, same rating.
    alone = scorer.score(imgs[:1], prompts(["a cat"]))[0].value
    assert scorer.score(imgs[:1], prompts(["something else"]))[0].value == alone


def save_tiny_clip_repo(folder, seed=0):
    """A transformers-format CLIP folder laid out like a hub snapshot (config, weights, tokenizer, processor)."""
    import json

    parts = tiny_clip_parts(seed=seed)
    parts.model.save_pretrained(folder)
    parts.tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 32, "width": 32}, "image_mean": list(OPENAI_MEAN), "image_std": list(OPENAI_STD)}))
    return parts


def test_clipscore_and_aesthetic_load_real_folders_like_the_hub(tmp_path):
    """The loading path (not injection): a local snapshot folder and an upstream-layout .pth for the MLP."""
    from imgbench.scorers.aesthetic import Aesthetic, AestheticParts, aesthetic_head
    from imgbench.scorers.clipscore import CLIPScore

    parts = save_tiny_clip_repo(tmp_path / "clip", seed=4)
    head = seeded(3, lambda: aesthetic_head(16).eval())
    torch.save({f"layers.{k}": v for k, v in head.state_dict().items()}, tmp_path / "aesthetic-model.pth")
    imgs, records = images(3, seed=1), prompts()[:3]

    loaded = CLIPScore(model=str(tmp_path / "clip"), device="cpu")
    assert loaded.identity()["weights"] == {"repo": str(tmp_path / "clip"), "revision": "local-folder"}
    injected = CLIPScore(backbone=parts, device="cpu")
    np.testing.assert_allclose([r.value for r in loaded.score(imgs, records)],
                               [r.value for r in injected.score(imgs, records)], atol=1e-5)

    aesthetic = Aesthetic(clip_model=str(tmp_path / "clip"), head_path=str(tmp_path / "aesthetic-model.pth"),
                          device="cpu")
    assert aesthetic.identity()["weights"]["head"]["revision"].startswith("sha256:")
    reference = Aesthetic(backbone=AestheticParts(clip=parts, head=head), device="cpu")
    np.testing.assert_allclose([r.value for r in aesthetic.score(imgs, records)],
                               [r.value for r in reference.score(imgs, records)], atol=1e-5)


def test_injected_backbone_identity_is_a_weight_digest():
    from imgbench.scorers.clipscore import CLIPScore

    one = CLIPScore(backbone=tiny_clip_parts(seed=1), device="cpu").identity()
    same = CLIPScore(backbone=lambda: tiny_clip_parts(seed=1), device="cpu").identity()
    other = CLIPScore(backbone=tiny_clip_parts(seed=2), device="cpu").identity()
    assert one == same and one != other
    assert one["name"] == "clipscore" and "injected_sha256" in one["weights"]
