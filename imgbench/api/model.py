"""The Model contract: a base generator (sd15, sdxl, flux-dev, shapes, dummy, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from PIL.Image import Image

    from imgbench.api.records import GenerationRequest


class Model(ABC):
    """A text-to-image generator.

    Construction must be cheap: it records settings and resolves *which* weights will be used
    (so `identity()` can key the run cache) but loads nothing heavy; weights load on first use.
    A model seeds its own generator per image and never touches global RNG state.

    Models with an IP-Adapter (what IMG needs) set `supports_image_tokens = True` and implement
    `encode_image`, and accept `image_tokens` / `ip_scale` in `generate`.
    """

    name: ClassVar[str] = "model"
    supports_image_tokens: ClassVar[bool] = False
    #: Images per call when the user gives no --batch-size (the shapes world runs fixed 16-row
    #: chunks, so a batch of 1 would waste most of each; diffusers models default to 1 for memory).
    preferred_batch_size: ClassVar[int] = 1

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that changes pixels: weights (resolved revision or digest), dtype, device
        type, scheduler, steps, guidance... It is hashed into the run id."""

    @abstractmethod
    def generate(
        self,
        requests: Sequence[GenerationRequest],
        image_tokens: Any | None = None,
        ip_scale: float = 0.0,
    ) -> list[Image]:
        """Generate one image per request. `image_tokens` (one entry per request) condition the
        generation through the IP-Adapter at `ip_scale`; models without one must reject them."""

    def encode_text(self, prompts: Sequence[str]) -> Any:
        """Text-encoder embeddings of prompts (the guidance ablation's 'text embedding' source)."""
        raise NotImplementedError(f"model {self.name!r} does not expose its text encoder")

    def encode_image(self, images: Sequence[Image]) -> Any:
        """Project images into IP-Adapter tokens, shape (batch, n_tokens, token_dim)."""
        raise NotImplementedError(f"model {self.name!r} has no IP-Adapter (image tokens)")

    def null_image_tokens(self, n: int) -> Any:
        """The adapter's tokens for *no* image — what its unconditional branch gets — as (n, n_tokens, token_dim)
        CPU float32: the `zero-tokens` control (imgbench.controls) regenerates with them."""
        raise NotImplementedError(f"model {self.name!r} has no IP-Adapter (image tokens)")

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Free accelerator memory; a no-op by default."""
