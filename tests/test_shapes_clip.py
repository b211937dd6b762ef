"""The shapes CLIP: resumable contrastive training and the shapes-clip scorer on tiny exported weights."""

from __future__ import annotations

import pytest

from imgbench.api.records import Prompt
from imgbench.cli import main as cli_main
from imgbench.components import build_scorer
from imgbench.errors import UserError
from imgbench.worlds.shapes.clip import ClipTrainConfig, ClipTrainer
from imgbench.worlds.shapes.grammar import spec_of
from imgbench.worlds.shapes.render import render

TINY = {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        "text": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}


def test_clip_resume_equals_uninterrupted(tmp_path):
    import torch

    config = ClipTrainConfig(batch=8, **TINY)
    straight = ClipTrainer(config, tmp_path / "a")
    straight.run(3)
    ClipTrainer(config, tmp_path / "b").run(1)
    resumed = ClipTrainer(config, tmp_path / "b")
    resumed.run(3)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    out = root / "out"
    assert cli_main(["train", "shapes", "clip", "--workdir", str(root / "work"), "--tiny", "--steps", "2",
                     "--batch", "8", "--export", str(out)]) == 0
    return out


def test_scorer_is_batch_independent_and_refuses_foreign_words(clip_weights):
    scorer = build_scorer("shapes-clip", {"model_path": str(clip_weights)})
    specs = [spec_of("colors", [{"shape": s, "color": c, "count": 1}]) for s, c in
             [("circle", "red"), ("square", "blue"), ("triangle", "green")]]
    prompts = [Prompt(id=str(i), text=t) for i, t in enumerate(["a red circle", "a blue square", "a green triangle"])]
    images = [render(spec, i) for i, spec in enumerate(specs)]
    together = [r.value for r in scorer.score(images, prompts)]
    alone = [scorer.score([im], [p])[0].value for im, p in zip(images, prompts, strict=True)]
    assert together == alone and all(0.0 <= v <= 2.5 for v in together)
    assert scorer.identity()["weights_sha256"]
    with pytest.raises(UserError, match="horse"):
        scorer.score(images[:1], [Prompt(id="x", text="a red horse")])


def test_missing_clip_weights_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="imgbench train shapes clip"):
        build_scorer("shapes-clip", {"model_path": str(tmp_path)})
