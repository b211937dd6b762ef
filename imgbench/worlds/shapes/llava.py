"""`shapes-llava`: a small transformers LLaVA (CLIP vision tower + small Llama) behind the MLLM contract.

Same classes as llava-hf checkpoints (`LlavaForConditionalGeneration`), at a tiny config; the
vision tower starts from the world's contrastive CLIP, as LLaVA starts from OpenAI CLIP (Liu et al.,
2023, §4.2). The conversation is "user : <image>×16 {question} assistant :" and IMG reads the last
layer's hidden states of that prefix (paper §3.2) — what `hidden_states` returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.errors import UserError
from imgbench.mllm.base import MLLM
from imgbench.needs import Need, note
from imgbench.worlds.shapes.edits import NOTHING
from imgbench.worlds.shapes.grammar import vocabulary
from imgbench.worlds.shapes.llava_data import CAPTION_QUESTION, QUESTION
from imgbench.worlds.shapes.render import CANVAS

SPECIALS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "<image>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID, IMAGE_ID = range(5)
IMAGE_TOKENS = 16  # 8×8 patches of the 32×32 canvas (CLS dropped: vision_feature_select_strategy="default")
EXTRA_WORDS = ("user", "assistant", ":", "?", ".", "how", "to", "make", "the", "match", "prompt", "describe", "add",
               "remove", "put", "nothing", "change")
VISION_CONFIG = {"model_type": "clip_vision_model", "image_size": CANVAS, "patch_size": 8, "num_channels": 3,
                 "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4}
TEXT_CONFIG = {"model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 64}
SHIPPED = Path(__file__).parent / "weights"


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, normalizers
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(vocabulary()) | set(EXTRA_WORDS) | set(NOTHING.split()))
    backend = Tokenizer(WordLevel({t: i for i, t in enumerate(SPECIALS + tuple(words))}, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]", unk_token="[UNK]", additional_special_tokens=["<image>"])


def build_llava(vocab_size: int, vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None) -> Any:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    text_config = {**TEXT_CONFIG, **(text or {}), "vocab_size": vocab_size, "bos_token_id": BOS_ID,
                   "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}
    config = LlavaConfig(vision_config={**VISION_CONFIG, **(vision or {})}, text_config=text_config,
                         image_token_index=IMAGE_ID, image_seq_length=IMAGE_TOKENS, vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(config)


def prefix_ids(tokenizer: Any, question: str) -> list[int]:
    """[BOS] user : <image>×16 {question} assistant : — the conversation with an empty assistant turn."""
    words = tokenizer(f"user : {question} assistant :", add_special_tokens=False).input_ids
    return [BOS_ID] + words[:2] + [IMAGE_ID] * IMAGE_TOKENS + words[2:]


def pixel_values(images: Sequence[Image.Image] | np.ndarray) -> Any:
    import torch

    pixels = images if isinstance(images, np.ndarray) else np.stack(
        [np.asarray(im.convert("RGB").resize((CANVAS, CANVAS), Image.Resampling.BOX)) for im in images])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class ShapesLlava(MLLM):
    """The finetuned instruction model (`variant="llava"`) or the caption-only base (`"llava-base"`)."""

    name = "shapes-llava"

    def __init__(self, variant: str = "llava", model_path: str | None = None) -> None:
        self.folder = Path(model_path) if model_path else SHIPPED / variant
        if not (self.folder / "model.safetensors").exists():
            raise UserError(f"shapes LLaVA weights are missing from {self.folder}. Train and export them: "
                            f"`imgbench train shapes llava --workdir W --export` (add --base for the caption-only "
                            f"model).")
        digest = hashlib.sha256()
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file() and p.name != "manifest.json"):
            digest.update(path.name.encode() + path.read_bytes())
        self._digest, self._parts = digest.hexdigest(), None
        note(Need("local", "shapes MLLM", str(self.folder), where=str(self.folder)))
        self.question = CAPTION_QUESTION if variant.endswith("base") else QUESTION

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "weights_sha256": self._digest, "template": "user : <image> {q} assistant :"}

    def provenance_manifest(self) -> Path:
        return self.folder / "manifest.json"

    def _load(self) -> dict[str, Any]:
        if self._parts is None:
            from transformers import LlavaForConditionalGeneration, PreTrainedTokenizerFast

            self._parts = {"model": LlavaForConditionalGeneration.from_pretrained(self.folder).eval(),
                           "tokenizer": PreTrainedTokenizerFast.from_pretrained(self.folder / "tokenizer")}
        return self._parts

    @property
    def hidden_size(self) -> int:
        return int(self._load()["model"].config.text_config.hidden_size)

    def hidden_states(self, images: Sequence[Image.Image], questions: Sequence[str]) -> list[Any]:
        import torch

        parts = self._load()
        out = []
        with torch.no_grad():  # one pair at a time: prefixes differ in length, and results stay batch-independent
            for image, question in zip(images, questions, strict=True):
                ids = torch.tensor([prefix_ids(parts["tokenizer"], question)])
                result = parts["model"](input_ids=ids, pixel_values=pixel_values([image]), output_hidden_states=True)
                out.append(result.hidden_states[-1][0])
        return out

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str], max_new_tokens: int = 16) -> list[str]:
        import torch

        parts = self._load()
        texts = []
        with torch.no_grad():
            for image, question in zip(images, questions, strict=True):
                ids = torch.tensor([prefix_ids(parts["tokenizer"], question)])
                generated = parts["model"].generate(input_ids=ids, pixel_values=pixel_values([image]),
                                                    max_new_tokens=max_new_tokens, do_sample=False,
                                                    eos_token_id=EOS_ID, pad_token_id=PAD_ID)
                texts.append(parts["tokenizer"].decode(generated[0, ids.shape[1]:], skip_special_tokens=True))
        return [" ".join(t.split()) for t in texts]
