"""IUPO: each preference switch equals a hand computation; the reference update fires after exactly k steps."""

from __future__ import annotations

import math

import pytest
import torch
from imgbench.methods.img.objective import ObjectiveConfig, ReferenceSchedule, iupo_loss


def sq(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


# One sample, one token of width 2: small enough to write every norm by hand.
F_, REF, W, L = [1.0, 0.2], [0.3, 0.6], [1.2, 0.9], [-0.4, 0.1]


def tensors():
    return tuple(torch.tensor([[v]]) for v in (F_, REF, W, L))


def hand(preference: str, lam: float = 1.0, scale: float = 1.0) -> tuple[float, float]:
    d_w = (sq(W, F_) - sq(W, REF)) * scale
    d_l = (sq(L, F_) - sq(L, REF)) * scale
    spin = sq(REF, F_) * scale
    base = sq(W, F_) * scale
    pref = {"dpo+spin": softplus(2 * d_w - d_l - spin), "dpo": softplus(d_w - d_l),
            "spin": softplus(d_w - spin), "none": 0.0}[preference]
    return base + lam * pref, pref


@pytest.mark.parametrize("preference", ["dpo+spin", "dpo", "spin", "none"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_each_switch_equals_hand_computation(preference: str, reduction: str) -> None:
    f, ref, w, l_ = tensors()
    out = iupo_loss(f, ref, w, l_, ObjectiveConfig(preference=preference, reduction=reduction, lam=0.7))
    total, pref = hand(preference, lam=0.7, scale=1.0 if reduction == "sum" else 0.5)
    assert out["pref"].item() == pytest.approx(pref, abs=1e-6)
    assert out["loss"].item() == pytest.approx(total, abs=1e-6)


def test_hand_values_are_distinct_so_switches_are_really_tested() -> None:
    values = {p: hand(p)[1] for p in ("dpo+spin", "dpo", "spin", "none")}
    assert len({round(v, 6) for v in values.values()}) == 4


def test_gradient_flows_only_into_f() -> None:
    f = torch.randn(2, 3, 4, requires_grad=True)
    ref = torch.randn(2, 3, 4, requires_grad=True)
    out = iupo_loss(f, ref, torch.randn(2, 3, 4), torch.randn(2, 3, 4), ObjectiveConfig())
    out["loss"].backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert ref.grad is None


@pytest.mark.parametrize("k", [1, 3, 10])
def test_reference_update_after_exactly_k_qualifying_steps(k: int) -> None:
    schedule = ReferenceSchedule(k=k)
    good, bad = (torch.tensor([1.0]), torch.tensor([2.0])), (torch.tensor([2.0]), torch.tensor([1.0]))
    # k-1 qualifying steps, then a failing one: no update, the streak restarts.
    assert not any(schedule.observe(*good) for _ in range(k - 1))
    assert not schedule.observe(*bad)
    fired = [schedule.observe(*good) for _ in range(k)]
    assert fired == [False] * (k - 1) + [True]
    assert schedule.updates == 1 and schedule.streak == 0
    # Ties do not qualify (f equal to f_ref is not "closer").
    assert not schedule.qualifies(torch.tensor([1.0]), torch.tensor([1.0]))


def test_batch_mean_versus_per_sample_judgement() -> None:
    theta, ref = torch.tensor([0.1, 3.0]), torch.tensor([1.0, 2.0])  # mean 1.55 > 1.5 though one sample passes
    theta2 = torch.tensor([0.1, 2.5])  # mean 1.3 < 1.5, but the second sample fails
    assert ReferenceSchedule(judgement="batch-mean").qualifies(theta2, ref)
    assert not ReferenceSchedule(judgement="per-sample").qualifies(theta2, ref)
    assert not ReferenceSchedule(judgement="batch-mean").qualifies(theta, ref)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="preference"):
        ObjectiveConfig(preference="kto")
    with pytest.raises(ValueError, match="reduction"):
        ObjectiveConfig(reduction="max")
