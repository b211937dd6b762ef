"""The Scorer contract: (image, prompt record) → number, with metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image

    from imgbench.api.records import Prompt, ScoreResult


class Scorer(ABC):
    """Scores images against their prompt records.

    Metadata lives in class attributes (torchmetrics style) so tables and `ls` can describe a
    scorer without running it. Scorers receive whole `Prompt` records, so structured scorers
    (GenEval, shapes-exact) read metadata, not prompt text.
    """

    name: ClassVar[str] = "scorer"
    version: ClassVar[int] = 1
    value_range: ClassVar[tuple[float, float]] = (float("-inf"), float("inf"))
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def identity(self) -> dict[str, Any]:
        """What keys the score cache: name, version, params (override to add a weight digest)."""
        return {"name": self.name, "version": self.version, "params": self.params}

    @abstractmethod
    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        """One result per (image, prompt) pair, in order; a batch gives the same as one at a time."""
