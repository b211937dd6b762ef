"""The `img` method end to end on the dummy model (real pipeline, real tiny LLaVA, real aligner weights).

The dummy model's IP tokens are 4 × 3 quadrant colours and its regeneration shifts colours by the
tokens at ip_scale, so an aligner that changes tokens visibly changes the image. The same method on
the real diffusers model classes (tiny SDXL and FLUX.1-dev with IP-Adapters) is in test_img_models.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import img_helpers
import numpy as np
import pytest
import torch
from img_helpers import tiny_llava
from imgbench.methods.img.method import IMGMethod
from PIL import Image

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.cli import main as cli
from imgbench.testing import DummyModel, hash_image


def save_aligner(path: Path, guidance_dim: int, seed: int = 0) -> Path:
    return img_helpers.save_aligner(path, guidance_dim, token_dim=3, seed=seed)  # the dummy's tokens are RGB


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    templates = root / "templates.json"
    templates.write_text(json.dumps(["How to make the image match {prompt}?", "What should change for {prompt}?"]))
    return root, tiny_llava(root / "mllm"), save_aligner(root / "aligner.safetensors", 32), templates


def img_args(inputs, out: Path, *extra: str) -> list[str]:
    root, llava, aligner, templates = inputs
    args = ["run", "--method", "img", "--model", "dummy", "--task", "tiny", "--seeds", "0-1", "--limit", "2",
            "--scorer", "dummy", "--output", str(out), "--device", "cpu"]
    for key, value in (("aligner", aligner), ("mllm", llava), ("original_mllm", llava), ("templates", templates),
                       ("mllm_dtype", "fp32"),
                       ("heads", 1), *(tuple(e.split("=", 1)) for e in extra)):
        args += ["--method-arg", f"{key}={value}"]
    return args


def records(out: Path, method: str) -> tuple[Path, list[dict]]:
    (run,) = (out / "runs" / "tiny" / "dummy" / method).iterdir()
    return run, [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]


def test_img_run_regenerates_through_ip_tokens_only(inputs, tmp_path) -> None:
    out = tmp_path / "results"
    assert cli(img_args(inputs, out, "save_answer=true")) == 0
    run, rows = records(out, "img")
    assert len(rows) == 4
    for row in rows:
        assert row["info"]["initial_image"] == "generated" and "question" in row["info"]
        initial = np.asarray(Image.open(run / row["artefacts"]["initial"]))
        final = np.asarray(Image.open(run / row["image"]))
        prompt = {"0": "a red apple on a table", "1": "a blue bird and a yellow flower"}[row["prompt_id"]]
        assert np.array_equal(initial, np.asarray(hash_image(prompt, row["seed"], 64, 64)))  # same seed = base image
        assert not np.array_equal(initial, final)  # the aligned tokens changed the image ...
        shift = final.astype(int) - initial.astype(int)
        assert len(np.unique(shift[(final > 0) & (final < 255)])) == 1  # ... and only through the token shift
        answer = json.loads((run / row["artefacts"]["answer"]).read_text())
        assert answer["question"] == row["info"]["question"] and isinstance(answer["answer"], str)
    identity = json.loads((run / "run.json").read_text())["identity"]["method"]
    assert identity["resolved"]["mllm"]["conversation"] == "llava_v0"
    assert len(identity["resolved"]["aligner"]["sha256"]) == 64 and identity["params"]["ip_scale"] == 0.2


def test_cached_base_run_is_reused_bit_identically(inputs, tmp_path) -> None:
    out = tmp_path / "results"
    assert cli(["run", "--method", "base", "--model", "dummy", "--task", "tiny", "--seeds", "0-1", "--limit", "2",
                "--scorer", "dummy", "--output", str(out)]) == 0
    base_run, base_rows = records(out, "base")
    assert cli(img_args(inputs, out)) == 0
    run, rows = records(out, "img")
    base_by_item = {(r["prompt_id"], r["seed"]): r for r in base_rows}
    for row in rows:
        reused = row["info"]["initial_image"]
        base = base_by_item[(row["prompt_id"], row["seed"])]
        assert reused["reused_from_run"] == base_run.name and reused["sha256"] == base["sha256"]
        assert (run / row["artefacts"]["initial"]).read_bytes() == (base_run / base["image"]).read_bytes()


def test_rounds_and_guidance_sources(inputs, tmp_path) -> None:
    out = tmp_path / "results"
    assert cli(img_args(inputs, out / "two", "rounds=2")) == 0
    run, rows = records(out / "two", "img")
    assert all("round1" in row["artefacts"] for row in rows)
    assert cli(img_args(inputs, out / "ft", "guidance=finetuned-mllm")) == 0
    assert cli(img_args(inputs, out / "mllm", "guidance=mllm")) == 0
    assert cli(img_args(inputs, out / "none", "guidance=none")) == 0
    _, none_rows = records(out / "none", "img")
    _, mllm_rows = records(out / "mllm", "img")
    assert none_rows[0]["sha256"] != mllm_rows[0]["sha256"]


class TextEncodingDummy(DummyModel):
    """The dummy generator plus a real (tiny) CLIP text encoder, for the 'text embedding' guidance source."""

    def __init__(self) -> None:
        from transformers import CLIPTextConfig, CLIPTextModel

        super().__init__()
        torch.manual_seed(0)
        self.text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=400, hidden_size=16, intermediate_size=32,
                                                         num_hidden_layers=1, num_attention_heads=2,
                                                         bos_token_id=1, eos_token_id=2, pad_token_id=2))

    def encode_text(self, prompts):
        from img_helpers import TOKENIZER
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
        tokenizer.pad_token = tokenizer.eos_token
        ids = tokenizer(list(prompts), padding="max_length", max_length=12, truncation=True,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            return self.text_encoder(input_ids=ids).last_hidden_state


def test_text_guidance_source(tmp_path) -> None:
    aligner = save_aligner(tmp_path / "text_aligner.safetensors", 16)
    method = IMGMethod(aligner=str(aligner), heads=1, guidance="text", device="cpu")
    requests = [GenerationRequest(Prompt("0", "a red apple"), seed=s, height=32, width=32) for s in (0, 1)]
    out = method.generate(requests, TextEncodingDummy())
    assert len(out) == 2 and out[0].info["initial_image"] == "generated"
    assert not np.array_equal(np.asarray(out[0].image), np.asarray(out[0].artefacts["initial"]))


def test_missing_defaults_exit_2_naming_what_is_missing(tmp_path, capsys) -> None:
    assert cli(["run", "--method", "img", "--model", "dummy", "--task", "tiny", "--output", str(tmp_path)]) == 2
    message = capsys.readouterr().err
    assert "aligner" in message and "mllm" in message and "methods/img/" in message
