"""Qwen2.5-VL behind the MLLM contract (paper Table 4's alternative MLLM): a tiny model built from config
with the scorers' local processor fixture, saved to a folder and loaded by path like a hub snapshot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from img_helpers import save_aligner, tiny_qwen_folder
from imgbench.methods.img.method import IMGMethod
from PIL import Image

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.errors import UserError
from imgbench.mllm.hf import QwenVLMLLM, load_mllm
from imgbench.testing import DummyModel

QUESTION = "How to make the image match the prompt: a red cat?"


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return tiny_qwen_folder(tmp_path_factory.mktemp("qwen") / "qwen2.5-vl")


def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (56, 56, 3), dtype=np.uint8))


def reference_inputs(folder, image, question):
    """The conversation as Qwen's own chat template writes it: user turn (image, question), open assistant turn."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "<|vision_start|><|image_pad|><|vision_end|>" in text
    return processor, processor(text=[text], images=[image], return_tensors="pt")


def test_hidden_states_are_the_last_layer_of_one_pass(qwen) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    mllm = load_mllm(str(qwen), dtype="fp32", device="cpu")
    assert isinstance(mllm, QwenVLMLLM) and mllm.hidden_size == 32 and mllm.conversation == "chat_template"
    images = [picture(0), picture(1)]
    states = mllm.hidden_states(images, [QUESTION, QUESTION])
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(qwen, dtype=torch.float32).eval()
    for image, state in zip(images, states, strict=True):
        processor, inputs = reference_inputs(qwen, image, QUESTION)
        n_image = int((inputs["input_ids"] == model.config.image_token_id).sum())
        assert n_image == inputs["image_grid_thw"].prod() // 4 > 0  # 2×2 merged patches of a 56 px image
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        assert state.shape == (inputs["input_ids"].shape[1], 32) and state.dtype == torch.float32
        torch.testing.assert_close(state, out.hidden_states[-1][0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(states[0], states[1])  # the image is read
    alone = mllm.hidden_states([images[1]], [QUESTION])[0]
    torch.testing.assert_close(alone, states[1], rtol=0, atol=0)  # each pair runs on its own: no padding effects


def test_answer_is_greedy_decoding_of_the_same_conversation(qwen) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    mllm = QwenVLMLLM(str(qwen), dtype="fp32", device="cpu")
    image = picture(2)
    (answer,) = mllm.answer([image], [QUESTION], max_new_tokens=6)
    processor, inputs = reference_inputs(qwen, image, QUESTION)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(qwen, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    expected = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert isinstance(answer, str) and answer == expected


def test_named_llava_template_is_refused(qwen) -> None:
    with pytest.raises(UserError, match="chat template"):
        QwenVLMLLM(str(qwen), conversation="llava_v0", dtype="fp32", device="cpu")


def test_img_runs_with_a_qwen_mllm(qwen, tmp_path) -> None:
    """Table 4's 'IMG (Qwen2.5-VL-7B)' path: Qwen states (width 32 here) guide an aligner of that width."""
    aligner = save_aligner(tmp_path / "aligner.safetensors", guidance_dim=32, token_dim=3)
    templates = tmp_path / "templates.json"
    templates.write_text('["How to make the image match {prompt}?"]')
    method = IMGMethod(aligner=str(aligner), heads=1, mllm=str(qwen), conversation="chat_template",
                       mllm_dtype="fp32", templates=str(templates), device="cpu", save_answer=True, answer_tokens=4)
    assert method.identity()["resolved"]["mllm"]["kind"] == "qwen2.5-vl"
    requests = [GenerationRequest(Prompt("0", "a red cat"), seed=s, height=56, width=56) for s in (0, 1)]
    out = method.generate(requests, DummyModel())
    assert [g.info["question"] for g in out] == ["How to make the image match a red cat?"] * 2
    assert all(not np.array_equal(np.asarray(g.image), np.asarray(g.artefacts["initial"])) for g in out)
    assert all(isinstance(g.artefacts["answer"]["answer"], str) for g in out)
