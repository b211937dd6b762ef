"""VQAScore (Lin et al., ECCV 2024): the probability that a VLM answers "Yes" to whether the image shows the prompt.

Definition (t2v_metrics): question `Does this figure show "{prompt}"? Please answer yes or no.` placed in
the backend's own chat template after the image, answer `Yes`; the score is exp(−CE) of the answer tokens
given image and question, with the softmax over the *full* vocabulary (not renormalised over Yes/No) and the
cross-entropy averaged over the answer's tokens (for a one-token "Yes", simply P(Yes)). Range [0, 1].
Measures prompt–image alignment, including composition (counting, relations, attributes).

Backends (parameter `backend`), each on transformers' AutoModelForImageTextToText + AutoProcessor:
- `qwen2.5-vl` — default `Qwen/Qwen2.5-VL-7B-Instruct` (t2v_metrics' `qwen2.5-vl-7b`);
- `llava-onevision` — default `llava-hf/llava-onevision-qwen2-7b-ov-hf`;
- `clip-flant5` — the paper's CLIP-FlanT5 through t2v_metrics itself, only when that package is importable
  (it pins torch 2.6 and git dependencies, so it lives in its own environment).
Scores from different backends are different measurements and are cached under different keys.
Batches are left-padded and the answer tokens appended after each row's generation prompt, so a batch's
scores equal one-at-a-time scores up to float rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.errors import UserError
from imgbench.scorers.base import BackboneScorer, torch_dtype
from imgbench.scorers.hub import hub_snapshot

logger = logging.getLogger(__name__)

QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
ANSWER = "Yes"
BACKENDS = {"qwen2.5-vl": "Qwen/Qwen2.5-VL-7B-Instruct",
            "llava-onevision": "llava-hf/llava-onevision-qwen2-7b-ov-hf",
            "clip-flant5": "clip-flant5-xxl"}
VLM_FILES = ["*.json", "*.jinja", "*.txt", "tokenizer*", "vocab*", "merges*"]
VLM_WEIGHTS = ("*.safetensors", "*.bin")


@dataclass
class VLMParts:
    model: Any
    """A transformers image-text-to-text model returning logits over the full vocabulary."""
    processor: Any
    """Its processor (chat template, tokenizer, image processor)."""


def answer_probability(parts: VLMParts, images: Sequence[Image], questions: Sequence[str], answer: str,
                       device: str) -> tuple[list[float], int]:
    """exp(−mean CE) of `answer`'s tokens after each (image, question) conversation's generation prompt."""
    import torch

    processor = parts.processor
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in questions]
    texts = [processor.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
    inputs = processor(text=texts, images=[im.convert("RGB") for im in images], padding=True, padding_side="left",
                       return_tensors="pt")
    answer_ids = torch.tensor(processor.tokenizer.encode(answer, add_special_tokens=False), dtype=torch.long)
    n = len(answer_ids)
    batch = len(texts)
    shape = tuple(inputs["input_ids"].shape)
    for key, value in list(inputs.items()):
        # Extend every per-token tensor (input ids, attention mask, token-type ids such as Qwen's
        # mm_token_type_ids) by the answer: ids, mask ones, type 0 (text).
        if key == "input_ids":
            inputs[key] = torch.cat([value, answer_ids.expand(batch, n)], dim=1)
        elif value.dim() == 2 and tuple(value.shape) == shape:
            fill = torch.ones if key == "attention_mask" else torch.zeros
            inputs[key] = torch.cat([value, fill(batch, n, dtype=value.dtype)], dim=1)
    dtype = next(parts.model.parameters()).dtype
    inputs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items()}
    with torch.inference_mode():
        logits = parts.model(**inputs).logits[:, -n - 1:-1, :].float()
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, answer_ids.to(device).expand(batch, n)[..., None])
    return logprobs.squeeze(-1).mean(dim=-1).exp().tolist(), n


class VQAScore(BackboneScorer):
    """P("Yes" | image, 'Does this figure show "{prompt}"? ...') under a VLM, in [0, 1]."""

    name = "vqascore"
    version = 1
    value_range = (0.0, 1.0)
    higher_is_better = True

    def __init__(self, backend: str = "qwen2.5-vl", model: str | None = None, revision: str | None = None,
                 question: str = QUESTION, answer: str = ANSWER, backbone: Any = None, device: str | None = None,
                 dtype: str = "bf16") -> None:
        if backend not in BACKENDS:
            raise UserError(f"vqascore: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        if "{}" not in question:
            raise UserError(f"vqascore: the question template needs a '{{}}' for the prompt, got {question!r}.")
        self.backend, self.model_id, self.revision = backend, model or BACKENDS[backend], revision
        super().__init__(backbone, device, dtype, backend=backend, model=self.model_id, revision=revision,
                         question=question, answer=answer)

    def resolve_weights(self) -> dict[str, Any]:
        if self.backend == "clip-flant5":
            t2v = _import_t2v_metrics()
            return {"t2v_metrics": getattr(t2v, "__version__", "unknown"), "model": self.model_id}
        self._files = hub_snapshot(self.model_id, self.name, VLM_FILES, VLM_WEIGHTS, self.revision)
        return self._files.identity()

    def load_backbone(self) -> Any:
        if self.backend == "clip-flant5":
            return _import_t2v_metrics().VQAScore(model=self.model_id, device=self.device)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = str(self._files.path)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch_dtype(self.dtype))
        return VLMParts(model=model.to(self.device).eval(), processor=AutoProcessor.from_pretrained(folder))

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        questions = [self.params["question"].format(p.text) for p in prompts]
        if self.backend == "clip-flant5":
            values = _t2v_scores(self.backbone, images, prompts, self.params)
            return [ScoreResult(value=v, details={"backend": self.backend}) for v in values]
        values, n = answer_probability(self.backbone, images, questions, self.params["answer"], self.device)
        return [ScoreResult(value=float(v), details={"answer_tokens": n}) for v in values]


def _import_t2v_metrics() -> Any:
    try:
        import t2v_metrics
    except ImportError:
        raise UserError("vqascore backend 'clip-flant5' needs the t2v_metrics package, which is not importable. "
                        "It pins torch 2.6 and git dependencies, so install it in a separate environment "
                        "(`pip install t2v-metrics==3.0`; v3.1 removed CLIP-FlanT5), or use "
                        "backend=qwen2.5-vl / llava-onevision.") from None
    return t2v_metrics


def _t2v_scores(model: Any, images: Sequence[Image], prompts: Sequence[Prompt], params: dict[str, Any]) -> list[float]:
    """t2v_metrics scores image files; write the batch to a temporary folder and score the pairs."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images):
            path = Path(folder) / f"{index}.png"
            image.save(path)
            paths.append(str(path))
        scores = model.model.forward(images=paths, texts=[p.text for p in prompts],
                                     question_template=params["question"], answer_template=params["answer"])
    return [float(s) for s in scores]
