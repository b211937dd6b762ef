"""SLD (Self-correcting LLM-controlled Diffusion, Wu et al., CVPR 2024) on tiny real components built from configs:
the planner's answer reading, bounded retries, cache and HTTP back end (a server on 127.0.0.1), the layout diff,
each latent operation's footprint, frozen steps, OWLv2 + SAM forwards through the detector code, the offline
failure of missing models, and `imgbench run --method sld` end to end on a tiny SD 1.5 pipeline."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from imgbench.methods.sld.backends import SD15Backend
from imgbench.methods.sld.detector import OwlDetector, SamMasker, nms, queries
from imgbench.methods.sld.latent_ops import LatentEditor, box_mask
from imgbench.methods.sld.operations import Operation, diff
from imgbench.methods.sld.planner import Planner, build_planner, read_layout, read_parse
from PIL import Image

from imgbench.cli import main as cli
from imgbench.errors import UserError
from imgbench.models import tiny

PARSE = ("Objects: [('cat', ['black']), ('ball', [None, None])]\nBackground: A realistic photo of a garden\n"
         "Negation: None")
LAYOUT = "Updated Objects: [('black cat #1', [0.1, 0.1, 0.3, 0.3]), ('ball #1', [0.6, 0.6, 0.5, 0.2])]"


class Scripted:
    """A chat back end that answers from a list (the fake planner the issue asks for)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.seen = list(answers), []

    def identity(self) -> dict:
        return {"backend": "scripted"}

    def chat(self, messages, max_tokens):
        self.seen.append(messages)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_answers_are_read_like_the_original_and_boxes_kept_in_the_image() -> None:
    parse = read_parse("Sure!\n" + PARSE)
    assert parse.objects == [{"name": "cat", "count": 1, "attributes": ["black"]},
                             {"name": "ball", "count": 2, "attributes": [None, None]}]
    assert (parse.background, parse.negation) == ("A realistic photo of a garden", None)
    assert read_layout("```\n" + LAYOUT + "\n```")[1] == {"name": "ball #1", "box": [0.6, 0.6, 0.4, 0.2]}
    for bad in ("no markers here", "Objects: [('cat',)]", "Objects: [unclosed"):
        with pytest.raises((ValueError, SyntaxError)):
            read_parse(bad)


def test_retries_are_bounded_then_no_correction_is_recorded() -> None:
    backend = Scripted(["I cannot do that."])
    planner = Planner(backend, max_tries=3)
    parse, record = planner.parse("a cat")
    assert parse is None and planner.calls == 3 and len(backend.seen) == 3
    assert record["fallback"] == "no correction" and len(record["answers"]) == 3 and len(record["errors"]) == 3
    assert "could not be read" in backend.seen[1][-1]["content"]  # a correction turn, not the same question again
    fixed = Planner(Scripted(["garbage", PARSE]), max_tries=3)
    parse, record = fixed.parse("a cat")
    assert parse is not None and fixed.calls == 2 and record["fallback"] is None


def test_the_answer_cache_makes_a_rerun_ask_the_planner_zero_times(tmp_path) -> None:
    first = Planner(Scripted([PARSE, LAYOUT]), cache_dir=tmp_path)
    parse, _ = first.parse("a black cat and two balls")
    layout, _ = first.correct("a black cat and two balls", parse, [{"name": "cat #1", "box": [0, 0, 0.5, 0.5]}])
    again = Planner(Scripted(["never asked"]), cache_dir=tmp_path)
    assert again.parse("a black cat and two balls")[0] == parse and again.correct(
        "a black cat and two balls", parse, [{"name": "cat #1", "box": [0, 0, 0.5, 0.5]}])[0] == layout
    assert (first.calls, again.calls) == (2, 0)


class Server:
    """An OpenAI-compatible /chat/completions endpoint on 127.0.0.1 answering by the request's content."""

    def __init__(self, layout: str = LAYOUT) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                text = layout if "Current Objects" in body["messages"][-1]["content"] else PARSE
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_http_back_end_sends_the_key_from_the_environment_and_never_records_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLD_TEST_KEY", "sk-secret-123")
    server = Server()
    try:
        planner = build_planner("served-model", server.url, None, None, "SLD_TEST_KEY", None, "bf16", 2, 64)
        planner.cache_dir = tmp_path
        parse, _ = planner.parse("a black cat")
    finally:
        server.close()
    assert parse is not None and parse.objects[0]["name"] == "cat"
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["model"] == "served-model"
    assert request["auth"] == "Bearer sk-secret-123" and request["temperature"] == 0
    stored = json.dumps(planner.identity()) + "".join(p.read_text() for p in tmp_path.iterdir())
    assert "sk-secret" not in stored and "served-model" in stored


def test_the_layout_difference_follows_the_original_matching_rule() -> None:
    detected = [{"name": "cat #1", "box": [0.1, 0.1, 0.3, 0.3]}, {"name": "dog #1", "box": [0.5, 0.5, 0.3, 0.3]},
                {"name": "red ball #1", "box": [0.0, 0.6, 0.3, 0.3]}, {"name": "cup #1", "box": [0.7, 0.0, 0.2, 0.2]}]
    corrected = [{"name": "cat #1", "box": [0.6, 0.1, 0.3, 0.3]},
                 {"name": "blue ball #1", "box": [0.0, 0.6, 0.3, 0.3]},
                 {"name": "bird #1", "box": [0.3, 0.3, 0.2, 0.2]},
                 {"name": "cup #1", "box": [0.7, 0.0, 0.2, 0.2]}]
    ops = {op.kind: op for op in diff(detected, corrected)}
    assert set(ops) == {"delete", "reposition", "attribute", "add"} and len(diff(detected, corrected)) == 4
    assert (ops["delete"].name, ops["reposition"].new_box, ops["add"].name) == ("dog #1", (0.6, 0.1, 0.3, 0.3),
                                                                                 "bird #1")
    assert (ops["attribute"].name, ops["attribute"].new_name) == ("red ball #1", "blue ball #1")
    moved_ball = [{"name": "blue ball #1", "box": [0.0, 0.0, 0.3, 0.3]}]  # IoU below 0.9: delete + add
    assert sorted(op.kind for op in diff(detected[2:3], moved_ball)) == ["add", "delete"]
    assert diff(detected, detected) == []


@pytest.fixture(scope="module")
def editor() -> tuple[LatentEditor, torch.Tensor]:
    pipe = tiny.tiny_sd15_pipeline(0)
    edit = LatentEditor(SD15Backend(pipe), steps=4, frozen_step_ratio=0.5, attribute_strength=0.5)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with torch.inference_mode():
        return edit, edit.invert(image)


OPS = [Operation("delete", "dog #1", (0.5, 0.5, 0.3, 0.3)),
       Operation("reposition", "cat #1", (0.1, 0.1, 0.3, 0.3), (0.55, 0.05, 0.4, 0.3)),
       Operation("attribute", "red ball #1", (0.0, 0.6, 0.3, 0.3), (0.0, 0.6, 0.3, 0.3), "blue ball #1"),
       Operation("add", "bird #1", None, (0.3, 0.3, 0.2, 0.2))]


@pytest.mark.parametrize("op", OPS, ids=[op.kind for op in OPS])
def test_each_operation_changes_latents_inside_its_mask_and_nowhere_else(editor, op) -> None:
    edit, background = editor
    height, width = background.shape[-2:]
    ellipse = torch.from_numpy(np.fromfunction(lambda y, x: ((y - 8) / 8) ** 2 + ((x - 8) / 6) ** 2 < 1, (32, 32)))
    masks = {"cat #1": ellipse, "red ball #1": box_mask((0.0, 0.6, 0.3, 0.3), height, width)}
    with torch.inference_mode():
        composition = edit.compose(background, [op], masks, lambda image, name: ([0.25, 0.25, 0.5, 0.5], ellipse))
    ((done, mask),) = composition.masks
    changed = (composition.latents != background).flatten(0, 2).any(0)
    assert done == op and changed.any() and not (changed & ~mask).any()
    assert changed[mask].float().mean() > 0.5  # it really acts on its region
    if op.kind == "reposition":  # the object's cells moved (a 4-cell-wide box became 5 wide: resized)
        assert not (changed & ~(ellipse | box_mask(op.new_box, height, width))).any()
    if op.kind == "attribute":  # steps before (1 - strength) x steps keep the inverted latents
        assert torch.equal(composition.latents[:edit.attribute_start + 1], background[:edit.attribute_start + 1])
    assert composition.frozen.equal(~mask if op.kind == "delete" else mask & (box_mask(
        op.new_box, height, width) if op.new_box else mask))


def test_frozen_steps_hold_the_composed_latents_in_the_frozen_region(editor, monkeypatch) -> None:
    edit, background = editor
    with torch.inference_mode():
        composition = edit.compose(background, OPS[:1] + OPS[3:], {}, lambda image, name: (
            [0.25, 0.25, 0.5, 0.5], box_mask([0.25, 0.25, 0.5, 0.5], 32, 32)))
        inputs, forward = [], edit.backend.pipe.unet.forward
        monkeypatch.setattr(edit.backend.pipe.unet, "forward", lambda sample, *a, **k: inputs.append(sample[0].clone())
                            or forward(sample, *a, **k))
        image = edit.regenerate(composition, "a garden with a bird")
    frozen, k = composition.frozen, edit.frozen_steps
    assert image.size == (64, 64) and len(inputs) == edit.steps and k == 2 and frozen.any() and (~frozen).any()
    for i in range(k + 1):  # the inputs of steps 0..k: C inside the frozen region
        assert torch.equal(inputs[i][:, frozen], composition.latents[i][0][:, frozen])
    assert not torch.equal(inputs[k + 1][:, frozen], composition.latents[k + 1][0][:, frozen])  # then free
    with torch.inference_mode():  # the parse's negation is the negative prompt
        negated = edit.regenerate(composition, "a garden with a bird", negative="people")
    assert not np.array_equal(np.asarray(negated), np.asarray(image))


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sld-parts")
    return {"detector": tiny.tiny_owlv2(root / "owlv2"), "sam": tiny.tiny_sam(root / "sam"),
            "sd15": tiny.save_pipeline(tiny.tiny_sd15_pipeline(0), root / "sd15")}


def test_tiny_owlv2_and_sam_run_through_the_detector_code(parts) -> None:
    objects = [{"name": "cat", "attributes": ["black"]}, {"name": "apple", "attributes": [None]}]
    assert [q for q, _, _ in queries(objects)] == ["image of a black cat", "image of a cat", "image of an apple"]
    assert nms([[0, 0, 0.5, 0.5], [0.01, 0, 0.5, 0.5], [0.6, 0.6, 0.2, 0.2]], [0.5, 0.9, 0.1], 0.15) == [1, 2]
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    detector = OwlDetector("", path=str(parts["detector"]), attribute_threshold=0.0, primitive_threshold=0.0,
                           nms_threshold=0.3, device="cpu")
    found = detector.detect(image, objects)
    assert found and detector.calls == 1
    for item in found:
        assert item["phrase"] in ("black cat", "cat", "apple") and item["name"].startswith(item["phrase"] + " #")
        assert all(0 <= v <= 1 for v in item["box"]) and 0 <= item["score"] <= 1
    for phrase in {i["phrase"] for i in found}:  # class-aware NMS: boxes of one phrase overlap at most 0.3
        boxes = [i["box"] for i in found if i["phrase"] == phrase]
        assert nms(boxes, [1.0] * len(boxes), 0.3) == list(range(len(boxes)))
    strict = OwlDetector("", path=str(parts["detector"]), attribute_threshold=1.01, primitive_threshold=1.01,
                         device="cpu")
    assert strict.detect(image, objects) == []
    masks = SamMasker("", path=str(parts["sam"]), device="cpu").masks(image, [found[0]["box"], [0.5, 0.5, 0.25, 0.25]])
    assert [m.shape for m in masks] == [(64, 64)] * 2 and masks[1].any() and not masks[1][:32].any()


def test_missing_models_fail_fast_offline_naming_them_and_the_fix(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants
    from imgbench.methods.sld.method import SLDMethod

    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        SLDMethod(planner="m", planner_url="http://127.0.0.1:9/v1")
    assert time.perf_counter() - start <= 5
    message = str(info.value)
    for needed in ("hf download google/owlv2-base-patch16-ensemble", "hf download facebook/sam-vit-huge",
                   "--method-arg detector_path=DIR", "--method-arg sam_path=DIR"):
        assert needed in message
    with pytest.raises(UserError, match="needs a planner LLM"):
        SLDMethod(detector_path=str(tmp_path), sam_path=str(tmp_path))


def sld_args(parts, server: Server, out: Path, **extra) -> list[str]:
    settings = {"planner_url": server.url, "planner": "fake", "detector_path": parts["detector"],
                "sam_path": parts["sam"], "attribute_threshold": 0.0, "primitive_threshold": 0.0, "steps": 2,
                "resolution": 64, **extra}
    args = ["run", "--method", "sld", "--model", "sd15", "--model-path", str(parts["sd15"]), "--model-arg",
            "steps=2", "--task", "tiny", "--seeds", "0", "--limit", "1", "--scorer", "dummy", "--output", str(out),
            "--device", "cpu"]
    for key, value in settings.items():
        args += ["--method-arg", f"{key}={value}"]
    return args


def test_run_method_sld_on_a_tiny_sd15_pipeline(parts, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-recorded")
    server = Server(layout="Updated Objects: [('bird #1', [0.3, 0.3, 0.4, 0.4])]")  # delete all, add a bird
    out, cache = tmp_path / "results", tmp_path / "answers"
    try:
        assert cli(sld_args(parts, server, out, rounds=2, planner_cache=cache)) == 0
        asked = len(server.requests)
        # another run (one round: another run id) sharing the answer cache asks the planner 0 times
        assert cli(sld_args(parts, server, tmp_path / "again", rounds=1, planner_cache=cache)) == 0
    finally:
        server.close()
    (run,) = (out / "runs" / "tiny" / "sd15" / "sld").iterdir()
    (item,) = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    cost = item["info"]["cost"]
    assert item["info"]["corrected"] is True and cost["generations"] == 1
    assert cost["planner_calls"] == 3 == asked == len(server.requests)  # parse + one layout per round; rerun: 0
    assert cost["detector_calls"] >= 4 and cost["denoising_steps"] == 2 * 3 * 2  # invert, add, regenerate x 2 rounds
    for name in ("initial", "parse", "detections", "layout", "operations", "masks", "round1", "detections1",
                 "round2"):
        assert name in item["artefacts"], name
    operations = json.loads((run / item["artefacts"]["operations"]).read_text())
    assert {op["kind"] for op in operations} >= {"add"}
    detections = json.loads((run / item["artefacts"]["detections"]).read_text())
    assert detections and all("score" in d and len(d["box"]) == 4 for d in detections)
    (again,) = (tmp_path / "again" / "runs" / "tiny" / "sd15" / "sld").iterdir()
    (other,) = [json.loads(line) for line in (again / "generations.jsonl").read_text().splitlines()]
    assert other["info"]["cost"]["planner_calls"] == 0 and again.name != run.name
    text = "".join(p.read_text() for p in [*run.rglob("*.json*"), *cache.iterdir()])
    assert "sk-never-recorded" not in text
    assert cli(["report", "--output", str(out), "--out", str(tmp_path / "report")]) == 0  # artefacts in the HTML
    html = (tmp_path / "report" / "index.html").read_text()
    assert all(f"{name}</summary>" in html for name in ("parse", "detections", "layout", "operations"))
    assert "alt='masks'" in html and "alt='round1'" in html


def test_an_unreadable_planner_keeps_the_image_and_records_the_fallback(parts) -> None:
    from imgbench.methods.sld.method import SLDMethod

    from imgbench.api.records import GenerationRequest, Prompt
    from imgbench.testing import DummyModel

    method = SLDMethod(planner="fake", planner_url="http://127.0.0.1:9/v1", detector_path=str(parts["detector"]),
                       sam_path=str(parts["sam"]), planner_tries=2, device="cpu")
    method._planner.backend = Scripted(["I would rather not."])
    requests = [GenerationRequest(prompt=Prompt(id="0", text="a red apple"), seed=3, height=64, width=64)]
    (out,) = method.generate(requests, DummyModel())
    record = out.artefacts["parse"]["planner"]
    assert out.info["corrected"] is False and record["fallback"] == "no correction" and len(record["answers"]) == 2
    assert out.info["cost"]["planner_calls"] == 2 and out.info["cost"]["denoising_steps"] == 0
    assert np.array_equal(np.asarray(out.image), np.asarray(out.artefacts["initial"]))
    with pytest.raises(UserError, match="latent_model=sdxl is a sdxl model"):  # before any image is generated
        method.params["latent_model"] = "sdxl"
        method.prepare(SimpleNamespace(model_spec=SimpleNamespace(family="sdxl")))


def test_an_sdxl_image_takes_the_downscale_route_and_comes_back_at_its_own_size(parts, tmp_path, monkeypatch) -> None:
    """SDXL base image → edited at `resolution` on the SD 1.5-class `latent_model` → resized to its own size."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    sdxl = tiny.save_pipeline(tiny.tiny_sdxl_pipeline(0), tmp_path / "sdxl")
    server = Server(layout="Updated Objects: [('bird #1', [0.3, 0.3, 0.4, 0.4])]")
    out = tmp_path / "results"
    args = sld_args(parts, server, out, latent_model_path=parts["sd15"], resolution=32)
    model = args.index("--model-path")
    args[args.index("sd15")] = "sdxl"
    args[model + 1] = str(sdxl)
    try:
        assert cli(args) == 0
    finally:
        server.close()
    (run,) = (out / "runs" / "tiny" / "sdxl" / "sld").iterdir()
    (item,) = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert item["info"]["corrected"] is True and item["info"]["cost"]["denoising_steps"] > 0
    assert Image.open(run / item["artefacts"]["round1"]).size == (32, 32)  # edited at 32 px on the tiny SD 1.5
    assert Image.open(run / item["image"]).size == (64, 64)  # and returned at the SDXL image's own size


def test_local_chat_back_end_applies_the_template_decodes_greedily_and_retries_boundedly(tmp_path) -> None:
    from imgbench.methods.sld.planner import TransformersChat
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(Path(__file__).parent / "fixtures" / "img" / "tokenizer")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    with tiny.seeded(0):
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                                             max_position_embeddings=1024, bos_token_id=1, eos_token_id=2))
    model.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    backend = TransformersChat("", path=str(tmp_path / "llm"), device="cpu", dtype="fp32")
    planner = Planner(backend, max_tries=2, max_tokens=6)
    parse, record = planner.parse("a cat")  # random weights never write "Objects:"
    assert parse is None and record["fallback"] == "no correction" and planner.calls == 2
    assert backend.identity()["decoding"] == "greedy" and len(backend.identity()["weights"]["path_digest"]) == 64
    again = Planner(TransformersChat("", path=str(tmp_path / "llm"), device="cpu", dtype="fp32"), max_tries=2,
                    max_tokens=6)
    assert again.parse("a cat")[1]["answers"] == record["answers"]  # greedy: the same answers every time
    assert "<assistant>" in backend._tokenizer.apply_chat_template([{"role": "user", "content": "x"}],
                                                                   add_generation_prompt=True, tokenize=False)


def test_a_missing_local_planner_fails_fast_offline_naming_it(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        build_planner("Qwen/Qwen2.5-7B-Instruct", None, None, None, "OPENAI_API_KEY", "cpu", "bf16", 3, 64)
    assert time.perf_counter() - start <= 5
    assert "hf download Qwen/Qwen2.5-7B-Instruct" in str(info.value) and "planner_path=DIR" in str(info.value)
