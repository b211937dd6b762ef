"""Instruct-Pix2Pix: the editor on tiny real diffusers pipelines (SD 1.5 and SDXL), the method end to end on the
dummy model with a tiny LLaVA writing the instructions, and the offline failure of a missing editor."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from img_helpers import tiny_llava
from imgbench.methods.instruct_pix2pix.editor import DiffusersEditor, edit_size
from imgbench.methods.instruct_pix2pix.instruction import NOTHING, to_instruction
from PIL import Image

from imgbench.cli import main as cli
from imgbench.errors import UserError
from imgbench.models import tiny


@pytest.fixture(scope="module")
def editors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ip2p")
    return {kind: tiny.save_pipeline(tiny.tiny_ip2p_pipeline(kind, seed=0), root / kind) for kind in ("sd15", "sdxl")}


def editor(folder: Path, **settings) -> DiffusersEditor:
    return DiffusersEditor("", editor_path=str(folder), **{"steps": 2, "resolution": 64, "device": "cpu",
                                                           "dtype": "fp32", **settings})


def sources(n: int, size: int = 64) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_answers_become_one_short_instruction() -> None:
    assert to_instruction("Make the cat blue. Then add a hat.") == "make the cat blue"
    assert to_instruction("  Add a red ball\nbecause the prompt says so") == "add a red ball"
    assert to_instruction(" ".join(["word"] * 40)).count("word") == 20
    for nothing in ("Nothing to change.", "No changes needed", "The image already matches the prompt.", "", "none"):
        assert to_instruction(nothing) == NOTHING


def test_image_guidance_below_one_is_refused(editors) -> None:
    with pytest.raises(UserError, match="image_guidance_scale=0.5 is below 1.*silently"):
        editor(editors["sd15"], image_guidance_scale=0.5)
    assert edit_size(1024, 1024, 768) == (768, 768) and edit_size(1024, 512, 512) == (512, 256)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_instruction_guidance_and_steps_reach_the_sampler(editors, kind, monkeypatch) -> None:
    edit = editor(editors[kind], steps=3, guidance_scale=6.0, image_guidance_scale=1.25)
    pipe = edit.pipeline
    calls, steps, batches = [], [], []
    original_call, set_timesteps, forward = type(pipe).__call__, pipe.scheduler.set_timesteps, pipe.unet.forward
    monkeypatch.setattr(type(pipe), "__call__", lambda self, *a, **k: calls.append((a, k)) or original_call(
        self, *a, **k))
    monkeypatch.setattr(pipe.scheduler, "set_timesteps",
                        lambda n, *a, **k: steps.append(n) or set_timesteps(n, *a, **k))
    monkeypatch.setattr(pipe.unet, "forward", lambda sample, *a, **k: batches.append(sample.shape[0]) or forward(
        sample, *a, **k))
    (first,) = edit.edit(sources(1), ["make the sky green"], [0])
    assert calls[0][0] == ("make the sky green",)
    assert (calls[0][1]["guidance_scale"], calls[0][1]["image_guidance_scale"]) == (6.0, 1.25)
    assert steps == [3] and len(batches) == 3  # one UNet call per step ...
    assert batches == [3, 3, 3]  # ... on the three-way batch [text+image, image, neither]: both guidances on
    for other in ({"guidance_scale": 2.0}, {"image_guidance_scale": 3.0}):  # each scale moves the sampler's output
        changed = editor(editors[kind], **{"steps": 3, "guidance_scale": 6.0, "image_guidance_scale": 1.25, **other})
        assert not np.array_equal(np.asarray(first), np.asarray(
            changed.edit(sources(1), ["make the sky green"], [0])[0]))


def test_an_edit_does_not_depend_on_batch_or_position(editors) -> None:
    edit = editor(editors["sd15"])
    images = sources(3)
    together = edit.edit(images, ["add a hat", "make it red", "remove the dog"], [5, 6, 7])
    alone = edit.edit(images[2:], ["remove the dog"], [7])[0]
    assert np.array_equal(np.asarray(together[2]), np.asarray(alone))
    assert not np.array_equal(np.asarray(together[1]), np.asarray(edit.edit(images[1:2], ["make it red"], [8])[0]))


def test_an_sdxl_sized_image_is_edited_at_the_editor_resolution_and_returned_at_its_size(editors, monkeypatch) -> None:
    edit = editor(editors["sdxl"], resolution=64)
    sizes = []
    original = type(edit.pipeline).__call__
    monkeypatch.setattr(type(edit.pipeline), "__call__", lambda self, *a, **k: sizes.append(
        (k["image"].size, k["width"], k["height"])) or original(self, *a, **k))
    (out,) = edit.edit(sources(1, size=1024), ["make it blue"], [0])
    assert out.size == (1024, 1024) and sizes == [((64, 64), 64, 64)]


def test_a_missing_editor_fails_fast_offline_naming_the_repo_and_the_fix(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        DiffusersEditor("timbrooks/instruct-pix2pix")
    assert time.perf_counter() - start <= 5
    message = str(info.value)
    assert "timbrooks/instruct-pix2pix" in message and "hf download timbrooks/instruct-pix2pix" in message
    assert "--method-arg editor_path=DIR" in message


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ip2p-mllm")
    templates = root / "templates.json"
    templates.write_text(json.dumps(["How to make the image match {prompt}?"]))
    return tiny_llava(root / "mllm"), templates


def run_args(editors, llava, out: Path, *extra: str, method: str = "instruct-pix2pix") -> list[str]:
    args = ["run", "--method", method, "--model", "dummy", "--task", "tiny", "--seeds", "0-1", "--limit", "2",
            "--scorer", "dummy", "--output", str(out), "--device", "cpu"]
    if method == "base":
        return args
    settings = {"editor_path": editors["sd15"], "mllm": llava[0], "templates": llava[1], "mllm_dtype": "fp32",
                "editor_dtype": "fp32", "steps": 2, "resolution": 64, "answer_tokens": 6,
                **dict(e.split("=", 1) for e in extra)}
    for key, value in settings.items():
        args += ["--method-arg", f"{key}={value}"]
    return args


def rows(out: Path, method: str) -> tuple[Path, list[dict]]:
    (run,) = (out / "runs" / "tiny" / "dummy" / method).iterdir()
    return run, [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]


def test_method_reuses_base_images_saves_the_instruction_and_counts_its_cost(editors, llava, tmp_path) -> None:
    out = tmp_path / "results"
    assert cli(run_args(editors, llava, out, method="base")) == 0
    base_run, base_rows = rows(out, "base")
    assert cli(run_args(editors, llava, out, "rounds=2")) == 0
    run, items = rows(out, "instruct-pix2pix")
    base = {(r["prompt_id"], r["seed"]): r for r in base_rows}
    for item in items:
        assert item["info"]["initial_image"]["sha256"] == base[(item["prompt_id"], item["seed"])]["sha256"]
        instruction = json.loads((run / item["artefacts"]["instruction"]).read_text())
        assert instruction["question"] == item["info"]["question"] and instruction["instruction"]
        assert "instruction1" in item["artefacts"] and "round1" in item["artefacts"]
        cost = item["info"]["cost"]
        assert cost["generations"] == 0 and cost["mllm_calls"] == 2 and cost["seconds"] > 0  # 0 new base images
        assert cost["edit_passes"] == 2 * item["info"]["edited"]
    identity = json.loads((run / "run.json").read_text())["identity"]["method"]
    assert identity["params"]["rounds"] == 2 and identity["resolved"]["editor"]["image_guidance_scale"] == 1.5
    assert len(identity["resolved"]["editor"]["weights"]["path_digest"]) == 64 and "editor_path" not in \
        identity["params"]


def test_nothing_to_change_keeps_the_initial_image(editors, llava, monkeypatch) -> None:
    from imgbench.methods.instruct_pix2pix.method import InstructPix2PixMethod

    from imgbench.api.records import GenerationRequest, Prompt
    from imgbench.testing import DummyModel

    method = InstructPix2PixMethod(editor_path=str(editors["sd15"]), mllm=str(llava[0]), templates=str(llava[1]),
                                   mllm_dtype="fp32", editor_dtype="fp32", steps=2, resolution=64, device="cpu")
    monkeypatch.setattr(method._mllm, "answer", lambda images, questions, tokens: ["Nothing to change."] * len(images))
    requests = [GenerationRequest(prompt=Prompt(id="0", text="a red apple"), seed=3, height=64, width=64)]
    (out,) = method.generate(requests, DummyModel())
    assert out.info["edited"] is False and out.info["cost"]["edit_passes"] == 0
    assert out.info["cost"]["generations"] == 1 and out.artefacts["instruction"]["instruction"] == NOTHING
    assert np.array_equal(np.asarray(out.image), np.asarray(out.artefacts["initial"]))


def test_bad_guidance_through_the_cli_exits_2(editors, llava, tmp_path, capsys) -> None:
    assert cli(run_args(editors, llava, tmp_path, "image_guidance_scale=0.9")) == 2
    assert "silently" in capsys.readouterr().err
