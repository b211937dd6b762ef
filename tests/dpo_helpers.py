"""Shared pieces of the Diffusion-DPO tests: one torch thread, state-dict snapshots and comparisons; the render
pairs they train on come from `imgbench.testing.render_pairs`."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run several times faster on one thread than on two contended ones (the trainer's CLI uses 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
