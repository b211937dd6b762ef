"""Shared builders for the Diffusion-DPO tests: preference pairs made from shapes renders (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgbench.worlds.shapes.grammar import SKILLS, splits
from imgbench.worlds.shapes.render import draw, layout

FIRST_SEED = 90_000
"""Seeds recorded for render pairs: in the parts' range (DESIGN §8), as real pairs' are."""


def render_pairs(folder: Path, n: int, prompts: list[str] | None = None) -> Path:
    """`n` pairs of train captions: winner = a render of the caption's scene, loser = a render of another train
    caption's scene; written as an imgbench pairs JSONL with recorded seeds. `prompts` replaces the captions (for
    models that are not the shapes world)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = [row for skill in SKILLS for row in splits()["train"][skill][:4]]
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        (caption, spec, _), (_, other, _) = train[i % len(train)], train[(i + 7) % len(train)]
        for name, scene in (("w", spec), ("l", other)):
            Image.fromarray(draw(layout(scene, rng))).save(folder / f"{i}-{name}.png")
        lines.append(json.dumps({"id": f"p{i}", "prompt": prompts[i % len(prompts)] if prompts else caption,
                                 "prompt_id": f"c{i % len(train)}", "winner": f"{i}-w.png", "loser": f"{i}-l.png",
                                 "winner_seed": FIRST_SEED + 2 * i, "loser_seed": FIRST_SEED + 2 * i + 1}))
    path = folder / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


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
