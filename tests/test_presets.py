"""`--preset img-paper`: the IMG paper's sampling settings on tiny SDXL and FLUX.1-dev, hashed as resolved values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models_support import model_args

from imgbench import presets
from imgbench.errors import UserError
from imgbench.runner import RunRequest, open_run, plan_run


def _run(kind: str, out: Path, preset: str | None = None, **overrides: object) -> dict:
    """Plan the run and write its run.json (what a run records before its first image; drawing 50 steps
    of even a tiny SDXL takes minutes on a busy 2-core machine and adds nothing here)."""
    args = model_args(kind, ip=False)
    given = {k: v for k, v in args.items() if k not in ("model_path", "device", "dtype", "steps", "guidance")}
    request = RunRequest(task="tiny", model=kind, model_path=args["model_path"], device="cpu", dtype="fp32",
                         model_args={**given, **overrides}, preset=preset, seeds=(0,), limit=1, output=out,
                         command="test")
    plan = plan_run(request)
    open_run(plan)
    return json.loads((plan.store.root / "run.json").read_text())


def test_sdxl_img_paper_preset_is_cfg_7_5_and_50_steps(tmp_path: Path) -> None:
    manifest = _run("sdxl", tmp_path / "preset", "img-paper")
    model = manifest["identity"]["model"]
    assert (model["guidance"], model["steps"]) == (7.5, 50) and manifest["preset"] == "img-paper"
    assert manifest["identity"]["model"]["weights"]["pipeline"]["path_digest"]  # the tiny folder, by content
    # the same values by hand are the same run (the identity hashes values, not the preset's name)
    by_hand = _run("sdxl", tmp_path / "hand", guidance=7.5, steps=50)
    assert by_hand["run_id"] == manifest["run_id"] and "preset" not in by_hand
    card = presets.load("img-paper")
    assert "Table 1" in card.reproduces


def test_flux_img_paper_preset_is_true_cfg_3_5_with_an_empty_negative_prompt(tmp_path: Path) -> None:
    manifest = _run("flux-dev", tmp_path, "img-paper", steps=3)
    model = manifest["identity"]["model"]
    assert (model["true_cfg"], model["guidance"], model["negative_prompt"]) == (3.5, 3.5, "")
    assert model["steps"] == 3  # --model-arg overrides the preset (30 steps): the override is what is hashed
    invocation = json.loads((next(tmp_path.glob("runs/tiny/flux-dev/base/*")) / "invocations.jsonl")
                            .read_text().splitlines()[0])
    assert invocation["preset"] == "img-paper"


def test_model_cards_keep_their_defaults_and_bad_presets_are_clear() -> None:
    assert presets.apply(None, "sdxl", {"steps": 2}) == {"steps": 2}
    with pytest.raises(UserError, match="unknown preset 'img-papr'. Did you mean 'img-paper'"):
        presets.apply("img-papr", "sdxl", {})
    with pytest.raises(UserError, match="not for model 'sd15'"):
        presets.apply("img-paper", "sd15", {})
