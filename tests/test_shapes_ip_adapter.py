"""The shapes IP-Adapter: diffusers' loader round trip, resumable training, tokens through the model API."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from shapes_helpers import tiny_snapshot

from imgbench.api.records import GenerationRequest
from imgbench.cli import main as cli_main
from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.grammar import SKILLS, fixes_scene
from imgbench.worlds.shapes.model import ShapesModel
from imgbench.worlds.shapes.tasks import split_prompts
from imgbench.worlds.shapes.train_ip import IPTrainConfig, IPTrainer


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ip")
    base = tiny_snapshot(root / "unet")
    assert cli_main(["train", "shapes", "clip", "--workdir", str(root / "clip-work"), "--tiny", "--steps", "1",
                     "--batch", "8", "--export", str(root / "clip")]) == 0
    return root, base, root / "clip"


def test_official_layout_round_trips_through_diffusers_loader():
    import torch

    unet = nets.build_unet(32, {"block_out_channels": [16, 16, 32]})
    state = ip_adapter.fresh_state_dict(unet, 24)
    first_cross = unet.get_submodule(next(n for n in unet.attn_processors if n.endswith("attn2.processor"))[:-10])
    assert torch.equal(state["ip_adapter"]["1.to_k_ip.weight"], first_cross.to_k.weight)  # IP-Adapter's init
    assert torch.equal(state["ip_adapter"]["1.to_v_ip.weight"], first_cross.to_v.weight)
    ip_adapter.attach(unet, state)
    back = ip_adapter.state_dict_of(unet)
    assert all(torch.equal(state[g][k], back[g][k]) for g in state for k in state[g])
    assert set(back["ip_adapter"]) >= {"1.to_k_ip.weight", "1.to_v_ip.weight"}


def test_ip_training_resumes_exactly_and_exports_a_usable_model(parts, tmp_path):
    import torch

    root, base, clip = parts
    config = IPTrainConfig(base=str(base), clip=str(clip), batch=4, warmup=1)
    straight = IPTrainer(config, tmp_path / "a")
    straight.run(2)
    IPTrainer(config, tmp_path / "b").run(1)
    resumed = IPTrainer(config, tmp_path / "b")
    resumed.run(2)
    a, b = ip_adapter.state_dict_of(straight.unet), ip_adapter.state_dict_of(resumed.unet)
    assert all(torch.equal(a[g][k], b[g][k]) for g in a for k in a[g])

    folder = tmp_path / "model"
    shutil.copytree(base, folder)
    without = ShapesModel(model_path=str(folder), steps=2)
    assert not without.supports_image_tokens
    straight.export(folder)
    model = ShapesModel(model_path=str(folder), steps=2, guidance=2.0)
    assert model.supports_image_tokens
    requests = [GenerationRequest(p, 0, 32, 32) for p in split_prompts("val")[:3]]
    plain = [np.asarray(im) for im in model.generate(requests)]
    tokens = model.encode_image(model.generate(requests))
    assert tuple(tokens.shape) == (3, ip_adapter.NUM_TOKENS, 32)
    at_zero = [np.asarray(im) for im in model.generate(requests, image_tokens=tokens, ip_scale=0.0)]
    assert all(np.array_equal(x, y) for x, y in zip(plain, at_zero, strict=True))
    scaled = [np.asarray(im) for im in model.generate(requests, image_tokens=tokens, ip_scale=1.0)]
    assert any(not np.array_equal(x, y) for x, y in zip(plain, scaled, strict=True))
    one = np.asarray(model.generate(requests[1:2], image_tokens=tokens[1:2], ip_scale=1.0)[0])
    assert np.array_equal(one, scaled[1])
    assert model.identity()["weights_sha256"] != without.identity()["weights_sha256"]


def test_ip_training_can_anneal_its_learning_rate(parts, tmp_path):
    root, base, clip = parts
    trainer = IPTrainer(IPTrainConfig(base=str(base), clip=str(clip), batch=2, warmup=1, anneal_from=1,
                                      anneal_steps=2), tmp_path / "w")
    rates = []
    for _ in range(4):
        trainer.train_step()
        rates.append(trainer.optimizer.param_groups[0]["lr"])
    assert rates == [1e-3, 1e-3, pytest.approx(5e-4), 0.0]


def test_image_dropout_zeroes_a_seeded_share_of_embeddings():
    import torch

    from imgbench.worlds.shapes.train_ip import drop_image_embeds

    embeds = torch.ones(400, 8)
    assert torch.equal(drop_image_embeds(embeds, 0.0, torch.Generator().manual_seed(0)), embeds)
    assert not drop_image_embeds(embeds, 1.0, torch.Generator().manual_seed(0)).any()
    first = drop_image_embeds(embeds, 0.05, torch.Generator().manual_seed(3))
    again = drop_image_embeds(embeds, 0.05, torch.Generator().manual_seed(3))
    dropped = int((first.sum(1) == 0).sum())
    assert torch.equal(first, again) and 5 <= dropped <= 40


def test_high_noise_bias_moves_a_seeded_share_into_the_upper_half():
    import torch

    from imgbench.worlds.shapes.train_ip import bias_to_high_noise

    t = torch.arange(1000)
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    assert torch.equal(bias_to_high_noise(t, 0.0, 1000, gen), t)
    assert torch.equal(gen.get_state(), state)  # no draw: unbiased runs are bit-identical to older ones
    assert bool((bias_to_high_noise(t, 1.0, 1000, gen) >= 500).all())
    half = bias_to_high_noise(t, 0.5, 1000, torch.Generator().manual_seed(3))
    chosen = torch.rand(1000, generator=torch.Generator().manual_seed(3)) < 0.5
    assert 450 <= int(chosen.sum()) <= 550
    assert torch.equal(half[chosen], 500 + t[chosen] // 2) and torch.equal(half[~chosen], t[~chosen])
    assert int(half.max()) == 999


def test_checkpoints_from_before_a_config_field_existed_still_resume(tmp_path):
    from dataclasses import dataclass, field

    from imgbench.worlds.shapes.resumable import ResumableTrainer

    @dataclass
    class Config:
        seed: int = 0
        image_dropout: float = 0.05
        extra: dict = field(default_factory=dict)

    trainer = ResumableTrainer(Config(), tmp_path)
    assert trainer.same_config({"seed": 0})  # older checkpoint: new fields at their defaults
    assert not trainer.same_config({"seed": 1})
    trainer.config = Config(image_dropout=0.5)
    assert not trainer.same_config({"seed": 0})  # a new field away from its default is a different config


class _EchoModel:
    """A perfect adapter: tokens are the image itself, and generation with tokens redraws it."""

    def encode_image(self, images):
        return list(images)

    def generate(self, requests, image_tokens=None, ip_scale=0.0):
        from PIL import Image

        if image_tokens is None:
            return [Image.new("RGB", (32, 32)) for _ in requests]
        return list(image_tokens)


def test_reproduction_counts_scenes_that_come_back():
    from imgbench.worlds.shapes.ip_eval import reproduction, scene
    from imgbench.worlds.shapes.render import render

    spec = next(p for p in split_prompts("val") if p.tags == ("color-attr",)).metadata["spec"]
    assert set(scene(render(spec, 0))) == {(o["color"], o["shape"]) for o in spec["objects"]}
    result = reproduction(_EchoModel(), "renders")
    assert (result["n"], result["with_tokens"], result["without_tokens"]) == (len(split_prompts("val")), 1.0, 0.0)
    named = [p for p in split_prompts("val") if fixes_scene(p.metadata["spec"])]
    assert result["n_colours_named"] == len(named) > 0
    # the echo model draws nothing from a caption: the ceiling is measured from text, not tokens
    assert (result["with_tokens_colours_named"], result["from_caption_colours_named"]) == (1.0, 0.0)
    assert result["with_tokens_by_skill"] == {skill: 1.0 for skill in SKILLS}
    assert result["from_caption_by_skill"] == {skill: 0.0 for skill in {p.tags[0] for p in named}}


def test_eval_ip_command_runs_on_an_exported_adapter(parts, tmp_path, caplog):
    root, base, clip = parts
    folder = tmp_path / "model"
    shutil.copytree(base, folder)
    IPTrainer(IPTrainConfig(base=str(base), clip=str(clip), batch=4, warmup=1), tmp_path / "w").export(folder)
    caplog.set_level("INFO", logger="imgbench")
    assert cli_main(["train", "shapes", "eval-ip", "--weights", str(folder), "--limit", "3"]) == 0
    assert caplog.text.count("IP reproduction") == 2
    assert cli_main(["train", "shapes", "eval-ip", "--weights", str(folder), "--source", "photos"]) == 2


def test_ip_adapter_command_records_its_objective_and_schedule(parts, tmp_path):
    import json

    root, base, clip = parts
    folder = tmp_path / "model"
    shutil.copytree(base, folder)
    assert cli_main(["train", "shapes", "ip-adapter", "--workdir", str(tmp_path / "w"), "--base", str(base),
                     "--clip", str(clip), "--steps", "1", "--batch", "2", "--caption-dropout", "1",
                     "--high-noise-share", "0.5", "--anneal-from", "0", "--anneal-steps", "2",
                     "--export", str(folder)]) == 0
    manifest = json.loads((folder / "ip_adapter" / "manifest.json").read_text())
    assert manifest["config"]["caption_dropout"] == 1.0 and manifest["step"] == 1
    assert manifest["config"]["high_noise_share"] == 0.5
    assert (manifest["config"]["anneal_from"], manifest["config"]["anneal_steps"]) == (0, 2)
    for flag in ("--caption-dropout", "--high-noise-share"):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["train", "shapes", "ip-adapter", "--workdir", str(tmp_path / "w2"), flag, "1.5"])
        assert exit_info.value.code == 2
