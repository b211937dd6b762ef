"""The `img` method end to end on the real diffusers model classes: tiny SDXL (IP-Adapter Plus) and tiny
FLUX.1-dev (XLabs adapter), loaded through the catalog's `sdxl` / `flux-dev` entries from local folders
(`--model-path` + `--model-arg ip_adapter_path=...`), as a user with local weights would run them.

What is checked: the regenerated image differs from the initial one only through the IP tokens (the
aligned tokens saved by `save_tokens=true`, put back at ip_scale 0, give the initial image bit for bit,
and at the run's ip_scale give the final image bit for bit); a cached `base` run's images are reused
bit-identically and the reuse is recorded; `rounds=2` and every guidance source run; token shapes
match across encode_image → aligner → generate for both families.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from img_helpers import TEXT_HIDDEN, save_aligner, tiny_llava
from imgbench.methods.img.method import IMGMethod
from PIL import Image
from suites_support import shared_suites

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.cli import main as cli
from imgbench.components import build_model
from imgbench.errors import UserError
from imgbench.models.tiny import tiny_model
from imgbench.suites.lists import LISTS

REPO = Path(__file__).resolve().parents[1]
PROMPTS = {row["id"]: row["text"]
           for row in map(json.loads, (REPO / "tasks" / "tiny" / "prompts.jsonl").read_text().splitlines())}
TOKEN_SHAPES = {"sdxl": (16, 64), "flux-dev": (4, 32)}  # tiny IP-Adapter Plus resampler / XLabs projection


def model_args(kind: str, models: Path) -> dict[str, str]:
    """The --model-arg values pointing the catalog model at the tiny local folders."""
    if kind == "sdxl":
        return {"ip_adapter_path": str(models / "ip-adapter"), "steps": "2"}
    adapter = models / "flux-ip-adapter"
    return {"ip_adapter_path": str(adapter / "adapter"), "image_encoder_path": str(adapter / "image_encoder"),
            "steps": "2", "max_sequence_length": "32"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny SDXL and FLUX folders (+ adapters), a 'finetuned' and an 'original' tiny LLaVA, aligners sized
    from each model's IP tokens and the LLaVA width."""
    root = tmp_path_factory.mktemp("img-models")
    models = {kind: tiny_model(kind, root / "models") for kind in TOKEN_SHAPES}
    aligners = {}
    for kind, model in models.items():
        assert model.image_token_shape == TOKEN_SHAPES[kind]
        aligners[kind] = save_aligner(root / f"aligner-{kind}.safetensors", TEXT_HIDDEN, model.image_token_shape[1],
                                      weight_std=0.5, bias_std=2.0)
    templates = root / "templates.json"
    templates.write_text(json.dumps(["How to make the image match {prompt}?", "What should change for {prompt}?"]))
    return SimpleNamespace(root=root, models=models, aligners=aligners, templates=templates,
                           finetuned=tiny_llava(root / "finetuned", seed=1),
                           original=tiny_llava(root / "original", seed=2))


def cli_args(world, kind: str, method: str, out: Path, method_args: dict[str, object]) -> list[str]:
    args = ["run", "--task", "tiny", "--model", kind, "--model-path", str(world.root / "models" / kind),
            "--device", "cpu", "--dtype", "fp32", "--method", method, "--seeds", "0-1", "--limit", "1",
            "--batch-size", "2", "--scorer", "dummy", "--output", str(out), "--data-dir", str(shared_suites())]
    for key, value in model_args(kind, world.root / "models").items():
        args += ["--model-arg", f"{key}={value}"]
    for key, value in method_args.items():
        args += ["--method-arg", f"{key}={value}"]
    return args


def only_run(out: Path, kind: str, method: str) -> tuple[Path, list[dict]]:
    (run,) = (out / "runs" / "tiny" / kind / method).iterdir()
    return run, [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]


def pixels(path_or_image) -> np.ndarray:
    if isinstance(path_or_image, Path):
        with Image.open(path_or_image) as image:
            return np.asarray(image.convert("RGB"))
    return np.asarray(path_or_image.convert("RGB"))


@pytest.mark.parametrize("kind", ["sdxl", "flux-dev"])
def test_cli_img_run_reuses_base_and_changes_only_ip_tokens(world, kind, tmp_path) -> None:
    out = tmp_path / "results"
    assert cli(cli_args(world, kind, "base", out, {})) == 0
    base_run, base_rows = only_run(out, kind, "base")
    img_args = {"aligner": world.aligners[kind], "mllm": world.finetuned, "heads": 1, "mllm_dtype": "fp32",
                "save_answer": "true", "save_tokens": "true"}  # templates: the official list via --data-dir
    assert cli(cli_args(world, kind, "img", out, img_args)) == 0
    run, rows = only_run(out, kind, "img")
    manifest = json.loads((run / "run.json").read_text())
    identity = manifest["identity"]
    assert identity["method"]["resolved"]["templates"]["sha256"] == LISTS["img-edit-instructions"].content_sha256
    assert identity["method"]["params"]["ip_scale"] == 0.2 and identity["method"]["params"]["passes"] == 3

    # The model a user gets from the catalog entry + local folders, exactly the run's model.
    args = model_args(kind, world.root / "models")
    _, model = build_model(kind, args, device="cpu", dtype="fp32", model_path=str(world.root / "models" / kind))
    assert {"name": kind, **model.identity()} == identity["model"]
    base_by_item = {(r["prompt_id"], r["seed"]): r for r in base_rows}
    assert len(rows) == 2
    initial, final, aligned, requests = [], [], [], []
    for row in rows:
        base = base_by_item[(row["prompt_id"], row["seed"])]
        reused = row["info"]["initial_image"]
        assert reused["reused_from_run"] == base_run.name and reused["sha256"] == base["sha256"]
        assert (run / row["artefacts"]["initial"]).read_bytes() == (base_run / base["image"]).read_bytes()
        assert PROMPTS[row["prompt_id"]] in row["info"]["question"]
        answer = json.loads((run / row["artefacts"]["answer"]).read_text())
        assert answer["question"] == row["info"]["question"] and isinstance(answer["answer"], str)

        record = json.loads((run / row["artefacts"]["tokens0"]).read_text())
        assert record["shape"] == list(TOKEN_SHAPES[kind]) and record["change_norm"] > 0
        assert record["ip_scale"] == 0.2
        initial.append(pixels(run / row["artefacts"]["initial"]))
        final.append(pixels(run / row["image"]))
        encoded = model.encode_image([Image.fromarray(initial[-1])]).cpu()
        torch.testing.assert_close(encoded, torch.tensor(record["initial"])[None], rtol=1e-5, atol=1e-5)
        aligned.append(torch.tensor(record["aligned"], dtype=torch.float32))
        requests.append(GenerationRequest(Prompt(row["prompt_id"], PROMPTS[row["prompt_id"]]), row["seed"], 64, 64))
    # Same batch as the run (batching may change a pixel's last bit; DESIGN §4), CPU float32 (B, N, D) tokens.
    tokens = torch.stack(aligned)
    at_zero = model.generate(requests, image_tokens=tokens, ip_scale=0.0)
    at_scale = model.generate(requests, image_tokens=tokens, ip_scale=0.2)
    for index in range(len(rows)):
        assert np.array_equal(pixels(at_zero[index]), initial[index])  # same prompt and seed: only the tokens ...
        assert np.array_equal(pixels(at_scale[index]), final[index])  # ... at ip_scale make the IMG image
        assert not np.array_equal(final[index], initial[index])


def method(world, kind: str, guidance: str, aligner: Path | None = None, **extra) -> IMGMethod:
    return IMGMethod(aligner=str(aligner or world.aligners[kind]), heads=1, guidance=guidance,
                     mllm=str(world.finetuned), original_mllm=str(world.original), mllm_dtype="fp32",
                     templates=str(world.templates), device="cpu", save_tokens=True, **extra)


def test_every_guidance_source_on_sdxl(world) -> None:
    """Paper Table 5a: no guidance, the model's text embedding, an original MLLM, the finetuned MLLM."""
    model = world.models["sdxl"]
    request = GenerationRequest(Prompt("0", PROMPTS["0"]), seed=3, height=64, width=64)
    plain = pixels(model.generate([request])[0])
    text_dim = model.encode_text(["x"]).shape[-1]
    text_aligner = save_aligner(world.root / "aligner-text.safetensors", text_dim, TOKEN_SHAPES["sdxl"][1],
                                weight_std=0.5, bias_std=2.0)
    aligned = {}
    for guidance in ("none", "text", "mllm", "finetuned-mllm"):
        (out,) = method(world, "sdxl", guidance, text_aligner if guidance == "text" else None).generate([request],
                                                                                                         model)
        assert np.array_equal(pixels(out.artefacts["initial"]), plain)  # the initial image is the base image
        tokens = out.artefacts["tokens0"]
        aligned[guidance] = torch.tensor(tokens["aligned"])
        assert tuple(aligned[guidance].shape) == TOKEN_SHAPES["sdxl"]
        assert not np.array_equal(pixels(out.image), plain)
    initial_tokens = model.encode_image([Image.fromarray(plain)]).cpu()[0]
    assert torch.equal(aligned["none"], initial_tokens)  # 'none' regenerates from the initial tokens as they are
    assert not torch.equal(aligned["mllm"], aligned["finetuned-mllm"])  # the original MLLM really is another one
    assert not torch.equal(aligned["text"], aligned["none"])


def test_two_rounds_on_sdxl(world) -> None:
    """Paper Fig. 7: round 2 applies IMG to round 1's image (same prompt and seed)."""
    model = world.models["sdxl"]
    request = GenerationRequest(Prompt("0", PROMPTS["0"]), seed=3, height=64, width=64)
    (one,) = method(world, "sdxl", "finetuned-mllm").generate([request], model)
    (two,) = method(world, "sdxl", "finetuned-mllm", rounds=2).generate([request], model)
    round1 = two.artefacts["round1"]
    assert np.array_equal(pixels(round1), pixels(one.image))  # round 1 of two is the one-round result
    assert not np.array_equal(pixels(two.image), pixels(round1))
    second_input = torch.tensor(two.artefacts["tokens1"]["initial"])
    torch.testing.assert_close(second_input, model.encode_image([round1]).cpu()[0])  # round 2 reads round 1's image
    second_input = torch.tensor(two.artefacts["tokens1"]["initial"])
    torch.testing.assert_close(second_input, model.encode_image([round1]).cpu()[0])  # round 2 reads round 1's image


def test_aligner_that_does_not_fit_the_model_is_a_user_error(world) -> None:
    wrong = save_aligner(world.root / "aligner-wrong.safetensors", TEXT_HIDDEN, token_dim=32)  # FLUX width on SDXL
    request = GenerationRequest(Prompt("0", PROMPTS["0"]), seed=0, height=64, width=64)
    with pytest.raises(UserError, match=r"IP tokens \(16, 64\).*train one"):
        method(world, "sdxl", "finetuned-mllm", aligner=wrong).generate([request], world.models["sdxl"])
