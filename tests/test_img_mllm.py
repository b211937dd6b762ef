"""MLLM guidance: LLaVA converter equals the original layout's computation; states are post-norm, one pass."""

from __future__ import annotations

import pytest
import torch
from img_helpers import original_llava, tiny_clip
from PIL import Image

from imgbench.errors import UserError
from imgbench.mllm.conversation import CONVERSATIONS
from imgbench.mllm.convert_llava import convert_llava
from imgbench.mllm.hf import LlavaMLLM, load_mllm

IMAGE_TOKEN_INDEX = -200  # LLaVA's in-sequence marker for the image


def expand2square(image: Image.Image, background: tuple[int, ...]) -> Image.Image:
    width, height = image.size
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def original_forward(state, clip_folder, tokenizer, image, prompt):
    """LLaVA-1.5 as the original code computes it: tokenizer_image_token, pad-to-square, CLIP layer -2
    without CLS, mlp2x_gelu projector, features spliced at IMAGE_TOKEN_INDEX, LLaMA on embeddings."""
    from transformers import CLIPImageProcessor, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
    ids = [chunks[0][0]]
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[1:])
    processor = CLIPImageProcessor.from_pretrained(clip_folder)
    background = tuple(int(x * 255) for x in processor.image_mean)
    pixels = processor(expand2square(image, background), return_tensors="pt").pixel_values
    clip = CLIPVisionModel.from_pretrained(clip_folder)
    features = clip(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    hidden = torch.nn.functional.gelu(features @ state["model.mm_projector.0.weight"].T
                                      + state["model.mm_projector.0.bias"])
    image_embeds = hidden @ state["model.mm_projector.2.weight"].T + state["model.mm_projector.2.bias"]
    config = LlamaConfig(vocab_size=state["lm_head.weight"].shape[0], hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=256, tie_word_embeddings=False)
    llama = LlamaForCausalLM(config)
    llama.load_state_dict({k: v for k, v in state.items() if not k.startswith("model.mm_projector")})
    embed = llama.model.embed_tokens
    pieces = []
    for token in ids:
        pieces.append(image_embeds[0] if token == IMAGE_TOKEN_INDEX else embed(torch.tensor([token])))
    inputs_embeds = torch.cat(pieces)[None]
    out = llama(inputs_embeds=inputs_embeds, output_hidden_states=True)
    return out.logits[0], llama.model(inputs_embeds=inputs_embeds).last_hidden_state[0]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava")
    clip = tiny_clip(root / "clip")
    state = original_llava(root / "original", clip)
    out = convert_llava(root / "original", root / "converted")
    return state, clip, out


@pytest.mark.parametrize("template", ["llava_v0", "llava_v1"])
def test_converter_logits_equal_original_layout(converted, template) -> None:
    from transformers import AutoTokenizer

    state, clip, folder = converted
    image = Image.new("RGB", (40, 24), (200, 30, 60))
    image.paste((10, 220, 90), (5, 5, 20, 15))
    question = "How to make the image match the prompt: a red apple?"
    prompt = CONVERSATIONS[template].render(question)
    tokenizer = AutoTokenizer.from_pretrained(clip.parent / "original")
    with torch.no_grad():
        logits, hidden = original_forward(state, clip, tokenizer, image, prompt)
        mllm = LlavaMLLM(str(folder), conversation=template, dtype="fp32", device="cpu")
        states = mllm.hidden_states([image], [question])
        mllm._load()
        converted_logits = mllm._model(**mllm._inputs(image, question)).logits[0]
    vocab = state["lm_head.weight"].shape[0]
    assert converted_logits.shape[0] == logits.shape[0]
    difference = (converted_logits[:, :vocab] - logits).abs().max()
    assert torch.allclose(converted_logits[:, :vocab], logits, atol=1e-5), difference
    # Guidance = last layer after the final norm: the LM head applied to it gives the logits.
    assert torch.allclose(states[0], hidden, atol=1e-5)
    assert mllm.hidden_size == 32 and states[0].shape == (logits.shape[0], 32)


def test_prompt_templates_are_the_llava_strings() -> None:
    v0 = CONVERSATIONS["llava_v0"].render("Q?")
    assert v0.endswith("###Human: <image>\nQ?###Assistant:") and v0.startswith("A chat between")
    assert CONVERSATIONS["llava_v1"].render("Q?").endswith("questions. USER: <image>\nQ? ASSISTANT:")


def test_identity_records_template_and_digest(converted) -> None:
    _, _, folder = converted
    a = LlavaMLLM(str(folder), dtype="fp32", device="cpu").identity()
    b = LlavaMLLM(str(folder), conversation="llava_v1", dtype="fp32", device="cpu").identity()
    assert a["conversation"] == "llava_v0" and b["conversation"] == "llava_v1"
    assert a["digest"] == b["digest"] and len(a["digest"]) == 64


def test_answer_decodes_greedy_text(converted) -> None:
    _, _, folder = converted
    mllm = LlavaMLLM(str(folder), dtype="fp32", device="cpu")
    image = Image.new("RGB", (30, 30), (0, 0, 255))
    first = mllm.answer([image], ["What should change?"], max_new_tokens=5)
    assert first == mllm.answer([image], ["What should change?"], max_new_tokens=5)
    assert isinstance(first[0], str)


def test_load_mllm_converts_original_format_once(converted, tmp_path, monkeypatch) -> None:
    _, clip, folder = converted
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    original = load_mllm(str(clip.parent / "original"), dtype="fp32", device="cpu")
    assert isinstance(original, LlavaMLLM) and original.identity()["converted_from"] == "original LLaVA format"
    image = Image.new("RGB", (30, 20), (0, 120, 255))
    direct = LlavaMLLM(str(folder), dtype="fp32", device="cpu")
    assert torch.equal(original.hidden_states([image], ["Q?"])[0], direct.hidden_states([image], ["Q?"])[0])
    assert isinstance(load_mllm(str(folder), dtype="fp32", device="cpu"), LlavaMLLM)
    with pytest.raises(UserError, match="not a hub reference|no such local path"):
        load_mllm(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="conversation template"):
        LlavaMLLM(str(folder), conversation="llava_v9")
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="downloads are off"):
        load_mllm("someone/not-cached-model")
