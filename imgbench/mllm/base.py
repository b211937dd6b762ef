"""The MLLM contract: read (image, question) and return hidden states or an answer.

IMG's guidance is the last-layer hidden states of one forward pass over the conversation
[system, image tokens, question, empty assistant turn] (paper §3.2); editing and planning methods
need the generated answer text. One wrapper serves both so every method sees the same model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image


class MLLM(ABC):
    """A vision-language model behind a fixed conversation template."""

    name: ClassVar[str] = "mllm"

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Weights (hub id + resolved revision or digest), conversation template, dtype: hashed by methods."""

    @abstractmethod
    def hidden_states(self, images: Sequence[Image], questions: Sequence[str]) -> list[Any]:
        """Last-layer hidden states, one tensor (sequence_length, width) per (image, question) pair.

        Sequences differ in length, so a list is returned rather than a padded batch.
        """

    @abstractmethod
    def answer(self, images: Sequence[Image], questions: Sequence[str], max_new_tokens: int = 64) -> list[str]:
        """Greedy-decoded answer text per (image, question) pair."""

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states (what sizes the Implicit Aligner's guidance projection)."""

    def provenance_manifest(self) -> Path | None:
        """A manifest whose `data.seeds` names the noise this model's training drawings used (imgbench.provenance);
        None for released weights, whose training noise is not ours to know."""
        return None
