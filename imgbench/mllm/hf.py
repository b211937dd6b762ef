"""transformers vision-language models behind the MLLM contract: LLaVA (llava-hf layout) and Qwen2.5-VL.

Guidance is the last decoder layer's output after the final norm (`last_hidden_state` of the
inner model, what `hidden_states[-1]` holds in HF decoders) from ONE forward pass over
[system, image tokens, question, empty assistant turn] — IMG paper §3.2, official demo
`generate=False`. Each (image, question) pair runs on its own, so padding can never change a
state. Nothing loads until first use; construction only resolves which weights will be used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from imgbench.errors import UserError
from imgbench.mllm.base import MLLM
from imgbench.mllm.conversation import CHAT_TEMPLATE, IMAGE_PLACEHOLDER
from imgbench.mllm.conversation import conversation as get_conversation
from imgbench.mllm.weights import folder_digest, read_config, resolve_weights

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class HFVisionLanguageModel(MLLM):
    """Shared loading, identity and the hidden-state / answer loops; subclasses build the inputs."""

    model_type: ClassVar[str] = ""
    default_conversation: ClassVar[str] = CHAT_TEMPLATE

    def __init__(self, weights: str, conversation: str | None = None, dtype: str = "bf16",
                 device: str | None = None, revision: str | None = None) -> None:
        if dtype not in DTYPES:
            raise UserError(f"MLLM dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
        self.weights = weights
        self.conversation = conversation or self.default_conversation
        if self.conversation != CHAT_TEMPLATE:
            try:
                get_conversation(self.conversation)
            except KeyError as exc:
                raise UserError(str(exc.args[0])) from None
        self.dtype = dtype
        self.device = device
        self.folder, self._weights_identity = resolve_weights(weights, revision)
        self.config = read_config(self.folder)
        self._model: Any = None
        self._processor: Any = None

    def identity(self) -> dict[str, Any]:
        return {"kind": self.name, **self._weights_identity, "conversation": self.conversation, "dtype": self.dtype,
                "device_type": self._device().split(":")[0]}

    @property
    def hidden_size(self) -> int:
        text = self.config.get("text_config") or self.config
        return int(text["hidden_size"])

    def _device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        self._model = self._model_class().from_pretrained(self.folder, dtype=getattr(torch, DTYPES[self.dtype]))
        self._model.to(self._device()).eval()
        self._processor = self._load_processor()

    def _model_class(self) -> Any:
        raise NotImplementedError

    def _load_processor(self) -> Any:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(self.folder)

    def _inputs(self, image: Image, question: str) -> dict[str, Any]:
        raise NotImplementedError

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        import torch

        dtype = getattr(torch, DTYPES[self.dtype])
        device = self._device()
        return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) if hasattr(v, "to") else v
                for k, v in inputs.items()}

    def hidden_states(self, images: Sequence[Image], questions: Sequence[str]) -> list[Any]:
        import torch

        self._load()
        states = []
        with torch.no_grad():
            for image, question in zip(images, questions, strict=True):
                out = self._model.model(**self._to_device(self._inputs(image.convert("RGB"), question)))
                states.append(out.last_hidden_state[0].float().cpu())
        return states

    def answer(self, images: Sequence[Image], questions: Sequence[str], max_new_tokens: int = 64) -> list[str]:
        import torch

        self._load()
        texts = []
        tokenizer = getattr(self._processor, "tokenizer", self._processor)
        with torch.no_grad():
            for image, question in zip(images, questions, strict=True):
                inputs = self._to_device(self._inputs(image.convert("RGB"), question))
                out = self._model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
                new = out[0, inputs["input_ids"].shape[1]:]
                texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        return texts

    def _chat_text(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class LlavaMLLM(HFVisionLanguageModel):
    """LLaVA-1.5 in the transformers layout (`llava-hf/*`, or a folder made by `convert_llava`).

    With a named LLaVA template the prompt is tokenised like LLaVA's `tokenizer_image_token`: the
    text around `<image>` is tokenised piece by piece (BOS kept once) and the image's tokens are
    spliced in between, so a converted original checkpoint sees the token ids it was trained on.
    """

    name = "llava"
    model_type = "llava"
    default_conversation = "llava_v0"

    def _model_class(self) -> Any:
        from transformers import LlavaForConditionalGeneration

        return LlavaForConditionalGeneration

    def _n_image_tokens(self) -> int:
        vision = self._model.config.vision_config
        n = (vision.image_size // vision.patch_size) ** 2
        return n + (1 if self._model.config.vision_feature_select_strategy == "full" else 0)

    def _inputs(self, image: Image, question: str) -> dict[str, Any]:
        import torch

        if self.conversation == CHAT_TEMPLATE:
            return dict(self._processor(text=self._chat_text(question), images=image, return_tensors="pt"))
        tokenizer = self._processor.tokenizer
        prompt = get_conversation(self.conversation).render(question)
        chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_PLACEHOLDER)]
        offset = 1 if chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0
        ids = chunks[0][:offset]
        image_ids = [self._model.config.image_token_id] * self._n_image_tokens()
        for index, chunk in enumerate(chunks):
            if index:
                ids.extend(image_ids)
            ids.extend(chunk[offset:])
        pixels = self._processor.image_processor(image, return_tensors="pt").pixel_values
        input_ids = torch.tensor([ids])
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "pixel_values": pixels}


class QwenVLMLLM(HFVisionLanguageModel):
    """Qwen2.5-VL (paper Table 4's alternative MLLM) through its own ChatML chat template."""

    name = "qwen2.5-vl"
    model_type = "qwen2_5_vl"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.conversation != CHAT_TEMPLATE:
            raise UserError(f"Qwen2.5-VL uses its own chat template; conversation={self.conversation!r} is not "
                            f"supported (use {CHAT_TEMPLATE!r}).")

    def _model_class(self) -> Any:
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    def _inputs(self, image: Image, question: str) -> dict[str, Any]:
        return dict(self._processor(text=[self._chat_text(question)], images=[image], return_tensors="pt"))


def is_original_llava(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "llava_llama" or "mm_vision_tower" in config


def converted_folder(folder: str, digest: str) -> str:
    """An original-format LLaVA converted once into the user cache (keyed by the source's digest)."""
    from platformdirs import user_cache_dir

    from imgbench.mllm.convert_llava import convert_llava

    target = Path(user_cache_dir("imgbench")) / "llava-converted" / digest[:16]
    if not (target / "config.json").exists():
        logger.warning("converting original-format LLaVA %s to the transformers layout in %s (once)", folder, target)
        tmp = target.with_name(target.name + ".partial")
        convert_llava(folder, tmp)
        tmp.rename(target)
    return str(target)


WORLD_MLLMS = {"shapes-llava": "llava", "shapes-llava-base": "llava-base"}
"""Names of the embedded worlds' MLLMs → their variant (`imgbench.worlds.shapes.llava.ShapesLlava`)."""


def load_mllm(weights: str, conversation: str | None = None, dtype: str = "bf16", device: str | None = None,
              revision: str | None = None) -> MLLM:
    """The wrapper for a folder or hub reference, chosen by its config's model_type. An original-format
    LLaVA (the shi-labs/IMG detector) is converted once with `convert_llava` and the result cached.
    The shapes world's own LLaVAs are named `shapes-llava` and `shapes-llava-base` (shipped weights; they
    bring their own tokenizer and conversation, run in fp32 on the CPU, and ignore `conversation`, `dtype`
    and `device`)."""
    if weights in WORLD_MLLMS:
        from imgbench.worlds.shapes.llava import ShapesLlava

        return ShapesLlava(variant=WORLD_MLLMS[weights])
    folder, facts = resolve_weights(weights, revision)
    config = read_config(folder)
    if is_original_llava(config):
        digest = facts.get("digest") or folder_digest(Path(folder))
        mllm = LlavaMLLM(converted_folder(folder, digest), conversation=conversation, dtype=dtype, device=device)
        mllm._weights_identity = {**facts, "digest": digest, "converted_from": "original LLaVA format"}
        return mllm
    kind = config.get("model_type")
    for cls in (LlavaMLLM, QwenVLMLLM):
        if kind == cls.model_type:
            return cls(weights, conversation=conversation, dtype=dtype, device=device, revision=revision)
    raise UserError(f"{weights}: model_type {kind!r} has no MLLM wrapper; supported: llava (llava-hf layout or the "
                    f"original LLaVA format), qwen2_5_vl.")
