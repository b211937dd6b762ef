"""VQAScore on tiny Qwen2.5-VL and LLaVA-OneVision models (real transformers classes, local processors).

The expected values are recomputed here from the model's raw logits: the conversation is built with the
processor's chat template, the answer token appended, and softmax taken over the full vocabulary.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scorer_helpers import FIXTURES, check_contract, images, prompts, seeded, tiny_qwen_vl

from imgbench.errors import UserError
from imgbench.scorers.vqascore import QUESTION, VLMParts, VQAScore


def tiny_qwen(seed=0):
    model, processor = tiny_qwen_vl(seed)
    return VLMParts(model=model, processor=processor)


def tiny_llava_onevision(seed=0):
    from transformers import AutoProcessor, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    processor = AutoProcessor.from_pretrained(FIXTURES / "llava_onevision_processor")
    ids = processor.tokenizer.convert_tokens_to_ids
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
        text_config={"model_type": "qwen2", "vocab_size": len(processor.tokenizer), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "max_position_embeddings": 512,
                     "bos_token_id": ids("<|im_start|>"), "eos_token_id": ids("<|im_end|>")},
        image_token_id=ids("<image>"), video_token_id=ids("<video>"), vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=[[28, 28]])
    return VLMParts(model=seeded(seed, lambda: LlavaOnevisionForConditionalGeneration(config).eval()),
                    processor=processor)


BACKENDS = {"qwen2.5-vl": (tiny_qwen, 56), "llava-onevision": (tiny_llava_onevision, 40)}


def plain_answer_probability(parts, image, question, answer):
    """P(answer | image, question) from raw logits: one conversation, no padding, full-vocabulary softmax."""
    processor = parts.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    answer_ids = processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        full = dict(inputs)
        full["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([answer_ids])], dim=1)
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        if "mm_token_type_ids" in inputs:
            full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"],
                                                   torch.zeros(1, len(answer_ids), dtype=torch.long)], dim=1)
        logits = parts.model(**full).logits[0]
    start = inputs["input_ids"].shape[1] - 1
    probs = [torch.softmax(logits[start + i], dim=-1)[tok].item() for i, tok in enumerate(answer_ids)]
    return float(np.exp(np.mean(np.log(probs)))), len(answer_ids)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_vqascore_is_full_vocabulary_probability_of_yes(backend):
    build, size = BACKENDS[backend]
    parts = build()
    scorer = VQAScore(backend=backend, backbone=lambda: parts, device="cpu", dtype="fp32")
    imgs, records = images(3, size=size, seed=1), prompts()[:3]
    results = check_contract(scorer, imgs, records)
    expected = [plain_answer_probability(parts, im, QUESTION.format(p.text), "Yes")[0]
                for im, p in zip(imgs, records, strict=True)]
    np.testing.assert_allclose([r.value for r in results], expected, rtol=1e-5, atol=1e-7)
    assert all(r.details["answer_tokens"] == 1 for r in results)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_vqascore_direction_follows_the_models_belief_in_yes(backend):
    build, size = BACKENDS[backend]
    parts = build(seed=2)
    scorer = VQAScore(backend=backend, backbone=parts, device="cpu", dtype="fp32")
    imgs, records = images(2, size=size, seed=3), prompts()[:2]
    before = [r.value for r in scorer.score(imgs, records)]
    yes = parts.processor.tokenizer.convert_tokens_to_ids("Yes")
    head = parts.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: out.index_add(
        -1, torch.tensor([yes]), torch.full((*out.shape[:-1], 1), 3.0)))
    try:
        after = [r.value for r in scorer.score(imgs, records)]
    finally:
        handle.remove()
    assert all(a > b for a, b in zip(after, before, strict=True))


def test_multi_token_answers_use_the_mean_cross_entropy():
    parts = tiny_qwen(seed=4)
    scorer = VQAScore(backend="qwen2.5-vl", answer="Yes please", backbone=parts, device="cpu", dtype="fp32")
    imgs, records = images(2, size=56, seed=5), prompts()[:2]
    results = scorer.score(imgs, records)
    for result, image, prompt in zip(results, imgs, records, strict=True):
        value, n = plain_answer_probability(parts, image, QUESTION.format(prompt.text), "Yes please")
        assert n > 1 and result.details["answer_tokens"] == n
        assert result.value == pytest.approx(value, rel=1e-5)


def test_vqascore_loads_a_saved_model_folder(tmp_path):
    parts = tiny_qwen(seed=6)
    parts.model.save_pretrained(tmp_path)
    parts.processor.save_pretrained(tmp_path)
    loaded = VQAScore(backend="qwen2.5-vl", model=str(tmp_path), device="cpu", dtype="fp32")
    assert loaded.identity()["weights"]["repo"] == str(tmp_path)
    imgs, records = images(2, size=56, seed=7), prompts()[:2]
    np.testing.assert_allclose([r.value for r in loaded.score(imgs, records)],
                               [r.value for r in VQAScore(backbone=parts, device="cpu", dtype="fp32")
                                .score(imgs, records)], rtol=1e-6)


def test_bad_backend_template_and_missing_t2v_metrics_are_user_errors():
    with pytest.raises(UserError, match="unknown backend"):
        VQAScore(backend="gpt-5")
    with pytest.raises(UserError, match="needs a"):
        VQAScore(question="Is it good?", backbone=tiny_qwen)
    try:
        import t2v_metrics  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="t2v-metrics==3.0"):
            VQAScore(backend="clip-flant5")
    else:  # pragma: no cover — only where t2v_metrics is installed
        assert VQAScore(backend="clip-flant5").identity()["weights"]["model"] == "clip-flant5-xxl"
