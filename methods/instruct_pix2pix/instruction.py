"""From the MLLM's answer to one short imperative edit instruction (IMG paper Fig. 3; img_paper.md §1.2).

The finetuned MLLM was trained to answer "how to make the image match the prompt" with an edit
instruction such as "Turn the wolf into a polar bear." — the same kind of sentence Instruct-Pix2Pix
was trained on ("make the mountains snowy"). An answer can still run on, so the instruction is its
first sentence, at most `MAX_WORDS` words, lowercased and without the final full stop. An answer that
says nothing should change (or is empty) becomes `NOTHING`, and the method keeps the image as it is.
"""

from __future__ import annotations

import re

NOTHING = "nothing to change"
MAX_WORDS = 20
_NOTHING = re.compile(r"^(?:nothing(?: to (?:change|edit|do))?|no (?:change|edit)s?(?: (?:is |are )?needed)?|"
                      r"(?:the image )?already matches(?: the prompt)?|none)\b")


def to_instruction(answer: str) -> str:
    """One imperative sentence, or `NOTHING` for an answer that asks for no change."""
    first = re.split(r"(?<=[.!?])\s|\n", answer.strip(), maxsplit=1)[0]
    text = " ".join(first.split()[:MAX_WORDS]).rstrip(".!?,;: ").lower()
    if not text or _NOTHING.match(text):
        return NOTHING
    return text
