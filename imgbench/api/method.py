"""The Method contract: an inference-time procedure applied to a model (base, img, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image

    from imgbench.api.model import Model
    from imgbench.api.records import GenerationRequest


@dataclass
class Generation:
    """A method's output for one request: the final image plus what is worth inspecting.

    `artefacts` maps a name to an image (saved as PNG) or to text/JSON-able data (e.g. the
    initial image, the MLLM's answer, an edit plan). `info` holds facts learned while
    generating that belong in the item's record (e.g. "initial image reused from run X").
    """

    image: Image
    artefacts: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Turns generation requests into images using a model.

    `params` are the fully resolved parameters (method YAML defaults ⊕ per-model defaults ⊕
    `--method-arg`); they are hashed into the run id, so a method must not read anything else
    that changes pixels.
    """

    name: ClassVar[str] = "method"
    version: ClassVar[int] = 1

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    def identity(self) -> dict[str, Any]:
        """What keys the run cache: name, version and resolved params (override to add digests)."""
        return {"name": self.name, "version": self.version, "params": self.params}

    def parts(self) -> list[dict[str, Any]]:
        """The trained parts this method's pixels depend on, each with the seeds its training data was drawn with
        (`imgbench.provenance.read_part`), so a run can say whether its parts saw its noise (DESIGN §8)."""
        return []

    def prepare(self, context: Any) -> None:  # noqa: B027 - optional hook, no-op by default
        """Called once before generation with the runner's context (e.g. to find a cached base run)."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        """One Generation per request, in order."""
