"""Diffusion-DPO on the shapes UNet (tiny snapshot, render pairs): the objective checked against plain torch, a
frozen reference, bit-identical seeded steps, resume == uninterrupted, and the shard-local pair order."""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from dpo_helpers import one_thread, same, weights  # noqa: F401 - one_thread: autouse fixture
from shapes_helpers import tiny_snapshot

from imgbench.dpo.backbones import build_backbone
from imgbench.dpo.data import PairData
from imgbench.dpo.loss import dpo_terms, per_sample_error
from imgbench.dpo.trainer import DPOConfig, DPOTrainer
from imgbench.errors import UserError
from imgbench.testing import render_pairs

PICKAPIC = Path(__file__).parent / "fixtures" / "img" / "pickapic_v2_tiny.parquet"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    return {"snapshot": tiny_snapshot(root / "unet-train"), "pairs": render_pairs(root / "pairs", 12)}


def make_trainer(world, workdir: Path, **overrides) -> DPOTrainer:
    backbone, _ = build_backbone("shapes", {}, str(world["snapshot"]), None, None)
    data = PairData(world["pairs"])
    config = DPOConfig(model="shapes", model_path=str(world["snapshot"]), pairs=data.identity,
                       **{"batch": 4, "warmup": 0, "lr": 1e-3, "beta": 50.0, "resolution": 32, **overrides})
    return DPOTrainer(config, workdir, backbone, data)


def test_loss_matches_an_independent_computation_on_fixed_tensors():
    gen = torch.Generator().manual_seed(0)
    n, shape = 5, (3, 4, 4)
    policy, reference, target = (torch.randn((2 * n, *shape), generator=gen) for _ in range(3))
    beta = 3.0
    p_err, r_err = per_sample_error(policy, target), per_sample_error(reference, target)
    terms = dpo_terms(p_err[:n], p_err[n:], r_err[:n], r_err[n:], beta)

    # written out: e(x) = mean of squares per sample; loss = mean log(1 + exp(-inside))
    def e(pred, i):
        return sum(float(v) ** 2 for v in (pred[i] - target[i]).flatten().tolist()) / (3 * 4 * 4)
    losses, right = [], 0
    for i in range(n):
        inside = -beta / 2 * ((e(policy, i) - e(reference, i)) - (e(policy, n + i) - e(reference, n + i)))
        losses.append(math.log1p(math.exp(-inside)))
        right += inside > 0
    assert abs(float(terms.loss) - sum(losses) / n) <= 1e-6
    assert terms.reward_accuracy() == pytest.approx(right / n)


def test_trainer_step_loss_matches_an_independent_computation(world, tmp_path):
    trainer = make_trainer(world, tmp_path / "w", caption_dropout=0.5)
    policy, reference = copy.deepcopy(trainer.policy), copy.deepcopy(trainer.reference)
    # the step's draws, in the trainer's documented order: dropout, noise, timesteps (seeded by (seed, step))
    gen = torch.Generator().manual_seed(0 * 1_000_003 + 0)
    pairs = trainer.data.batch(0, 0, 4)
    dropped = torch.rand(4, generator=gen) < 0.5
    noise = torch.randn((4, 12, 16, 16), generator=gen)
    t = torch.randint(0, 1000, (4,), generator=gen)
    pixels = [np.asarray(image) for pair in pairs for image in pair.images()]
    images = torch.tensor(np.stack(pixels[0::2] + pixels[1::2])).permute(0, 3, 1, 2).float() / 127.5 - 1
    x0 = torch.nn.functional.pixel_unshuffle(images, 2)
    acp = trainer.backbone.scheduler.alphas_cumprod[torch.cat([t, t])].view(-1, 1, 1, 1)
    noisy = acp.sqrt() * x0 + (1 - acp).sqrt() * torch.cat([noise, noise])
    v = acp.sqrt() * torch.cat([noise, noise]) - (1 - acp).sqrt() * x0
    prompts = ["" if d else pair.prompt for pair, d in zip(pairs, dropped.tolist(), strict=True)] * 2
    condition = trainer.backbone.condition(prompts)
    with torch.no_grad():
        errors = {name: ((net(noisy, torch.cat([t, t]), **condition).sample - v) ** 2).mean(dim=(1, 2, 3))
                  for name, net in (("policy", policy), ("reference", reference))}
    inside = -50.0 / 2 * ((errors["policy"][:4] - errors["reference"][:4])
                          - (errors["policy"][4:] - errors["reference"][4:]))
    expected = float(torch.log1p(torch.exp(-inside)).mean())
    assert abs(trainer.train_step() - expected) <= 1e-6


def test_reference_never_changes_and_receives_no_gradient(world, tmp_path):
    trainer = make_trainer(world, tmp_path / "w")
    start_policy, start_reference = weights(trainer.policy), weights(trainer.reference)
    assert same(start_policy, start_reference)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in trainer.reference.parameters()}
    for _ in range(3):
        trainer.train_step()
        assert all(p.grad is None and not p.requires_grad for p in trainer.reference.parameters())
        assert not trainer.reference.training
        assert same(weights(trainer.reference), start_reference)
    assert not same(weights(trainer.policy), start_policy)
    assert any(p.grad is not None for p in trainer.policy.parameters())


def test_first_steps_are_bit_identical_for_a_seed(world, tmp_path):
    runs = []
    for name in ("a", "b"):
        trainer = make_trainer(world, tmp_path / name, caption_dropout=0.3)
        runs.append(([trainer.train_step() for _ in range(3)], weights(trainer.policy)))
    assert runs[0][0] == runs[1][0] and same(runs[0][1], runs[1][1])
    other = make_trainer(world, tmp_path / "c", seed=1, caption_dropout=0.3)
    assert [other.train_step() for _ in range(3)] != runs[0][0]


def test_resume_equals_uninterrupted(world, tmp_path):
    straight = make_trainer(world, tmp_path / "straight")
    straight.run(4, log_every=1)
    first = make_trainer(world, tmp_path / "split")
    first.run(2, log_every=1)
    resumed = make_trainer(world, tmp_path / "split")
    assert resumed.step == 2
    resumed.run(4, log_every=1)
    assert same(weights(resumed.policy), weights(straight.policy))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert [h["reward_accuracy"] for h in resumed.history] == [h["reward_accuracy"] for h in straight.history]
    with pytest.raises(UserError, match="resume with the same options"):
        make_trainer(world, tmp_path / "split", beta=10.0)


def test_accumulating_micro_batches_gives_the_full_batch_step(world, tmp_path):
    whole = make_trainer(world, tmp_path / "whole")
    split = make_trainer(world, tmp_path / "split", accumulate=2)
    assert abs(whole.train_step() - split.train_step()) <= 1e-6
    # the same gradient up to float summation order (Adam's first step is ~lr·sign(g), so compare gradients)
    for a, b in zip(whole.policy.parameters(), split.policy.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    with pytest.raises(UserError, match="accumulate"):
        DPOConfig(model="shapes", batch=4, accumulate=3)


def test_pair_order_is_seeded_and_every_epoch_visits_each_pair_once(world, tmp_path):
    data = PairData(world["pairs"])
    epoch = [p.id for step in range(3) for p in data.batch(5, step, 4)]  # 12 pairs = one epoch
    assert sorted(epoch) == sorted(p.id for p in data.pairs) and epoch != [p.id for p in data.pairs]
    assert [p.id for p in data.batch(5, 1, 4)] == epoch[4:8]
    assert [p.id for p in data.batch(6, 0, 4)] != epoch[:4]
    assert data.seeds()[:2] == [90_000, 90_001]
    # Pick-a-Pic: a folder of parquet shards, read shard-locally; ties dropped; no seeds recorded
    folder = tmp_path / "pickapic"
    folder.mkdir()
    for name in ("a.parquet", "b.parquet"):
        shutil.copy(PICKAPIC, folder / name)
    shards = PairData(folder)
    assert shards.n == 8 and shards.seeds() is None and shards.pairs is None
    visited = [(p.prompt, p.winner) for step in range(2) for p in shards.batch(0, step, 4)]
    assert len(set(visited)) == 4 and sorted(visited) == sorted(visited[:4] + visited[4:])
    assert sorted(p.prompt for p in shards.batch(0, 0, 8)) == sorted(["caption 0", "caption 1", "caption 3",
                                                                     "caption 4"] * 2)
