"""Records: the plain data that flows between tasks, models, methods and scorers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from imgbench.util.text import slugify


@dataclass(frozen=True)
class Prompt:
    """One prompt of a task.

    The id is the upstream id or row index, never a hash of the text: suites repeat texts
    (HPDv2, TIFA), and two rows with the same text are still two prompts.
    """

    id: str
    """Upstream id or row index, as a string (also a folder name in the run, so no '/')."""
    text: str
    """The prompt text given to the generator."""
    tags: tuple[str, ...] = ()
    """Normalised slugs (category, skill, challenge) used for subsets and per-tag metrics."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Free mapping for structured scorers (GenEval objects, the shapes world's exact spec)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(self.id))
        object.__setattr__(self, "tags", tuple(dict.fromkeys(slugify(t) for t in self.tags if slugify(t))))

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "tags": list(self.tags), "metadata": dict(self.metadata)}


@dataclass(frozen=True)
class GenerationRequest:
    """What a model or method is asked to make: one image for (prompt, seed) at a size.

    The seed is used as given for a per-image `torch.Generator`, so an image never depends on
    batch size or position in the batch.
    """

    prompt: Prompt
    seed: int
    height: int
    width: int


@dataclass
class ScoreResult:
    """One scorer's verdict on one image."""

    value: float
    details: Mapping[str, Any] | None = None
