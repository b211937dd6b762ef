"""Conversation templates, written out so the exact prompt an MLLM sees is explicit and recorded.

The released IMG aligners were trained on states of the finetuned LLaVA-1.5 read through the
official demo, which loads the model from a folder named `llava`; LLaVA's `eval_model` then picks
the `llava_v0` template because the name lacks "v1" (img_paper.md §1.2). `llava_v0` is therefore
the default here, and every template is a named, recorded parameter. The strings follow LLaVA's
`conversation.py` (sep styles SINGLE and TWO) with the image placeholder first in the user turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgbench.errors import did_you_mean

IMAGE_PLACEHOLDER = "<image>"
LLAVA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions.")


@dataclass(frozen=True)
class Conversation:
    """One user turn (image then question) and an empty assistant turn."""

    name: str
    system: str
    roles: tuple[str, str]
    sep: str
    sep2: str | None = None
    """Set for LLaVA's TWO style (separator after the assistant's turns); None for SINGLE."""

    def render(self, question: str) -> str:
        """The full prompt with `<image>` where the image tokens go, ending in the empty assistant turn."""
        user = f"{IMAGE_PLACEHOLDER}\n{question}"
        return f"{self.system}{self.sep}{self.roles[0]}: {user}{self.sep}{self.roles[1]}:"


CONVERSATIONS: dict[str, Conversation] = {
    # LLaVA conv_llava_v0: SINGLE style, '###' separator.
    "llava_v0": Conversation("llava_v0", LLAVA_SYSTEM, ("Human", "Assistant"), "###"),
    # LLaVA conv_llava_v1 / vicuna_v1: TWO style, ' ' then '</s>' (the LLaVA-1.5 finetuning template).
    "llava_v1": Conversation("llava_v1", LLAVA_SYSTEM, ("USER", "ASSISTANT"), " ", "</s>"),
}

#: Use the processor's own chat template (Qwen2.5-VL's ChatML, llava-hf's template) instead of a named one.
CHAT_TEMPLATE = "chat_template"


def conversation(name: str) -> Conversation:
    if name not in CONVERSATIONS:
        raise KeyError(did_you_mean(name, [*CONVERSATIONS, CHAT_TEMPLATE], "conversation template"))
    return CONVERSATIONS[name]
