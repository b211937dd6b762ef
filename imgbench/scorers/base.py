"""What every model-backed scorer shares: resolve weights early, load once, accept an injected backbone.

A backbone is whatever a scorer computes with (a CLIP model plus its tokenizer, a VLM plus its
processor, ...). Real runs resolve it from the hub; tests inject a tiny one built from a config,
either the object itself or a zero-argument callable returning it (DESIGN §4). Weights are resolved
in the constructor so a missing checkpoint fails before any work starts, and loaded lazily, once per
process, on first use (several scorer instances on the same weights share one copy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from imgbench.api.scorer import Scorer
from imgbench.errors import UserError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_LOADED: dict[tuple, Any] = {}
"""Backbones loaded in this process, keyed by (scorer class, weight identity, device, dtype)."""


def torch_dtype(name: str) -> torch.dtype:
    import torch

    if name not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}.")
    return getattr(torch, DTYPES[name])


def default_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def backbone_digest(backbone: Any) -> str:
    """sha256 over every tensor of every torch module inside an injected backbone (its weight identity)."""
    import torch

    digest = hashlib.sha256()

    def visit(obj: Any) -> None:
        if isinstance(obj, torch.nn.Module):
            for name, tensor in sorted(obj.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for field in dataclasses.fields(obj):
                visit(getattr(obj, field.name))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)

    visit(backbone)
    return digest.hexdigest()


class BackboneScorer(Scorer):
    """A scorer computed by a neural backbone, which is resolved eagerly and loaded lazily."""

    model_kind: ClassVar[str] = "backbone"

    def __init__(self, backbone: Any | Callable[[], Any] | None = None, device: str | None = None,
                 dtype: str = "fp32", **params: Any) -> None:
        super().__init__(dtype=dtype, **params)
        if dtype not in DTYPES:
            raise UserError(f"{self.name}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
        self.dtype = dtype
        self._device = device
        self._injected = backbone
        self._backbone: Any = None
        # Weights first (no torch import needed), so a missing checkpoint is reported in well under a second.
        self._weights: dict[str, Any] | None = None if backbone is not None else self.resolve_weights()
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise UserError(f"scorer {self.name!r} needs {exc.name}: `pip install 'imgbench[torch]'`.") from None

    @property
    def device(self) -> str:
        return default_device(self._device)

    def resolve_weights(self) -> dict[str, Any]:
        """Find (download if allowed) the checkpoint files; return their identity. Raise UserError if absent."""
        raise NotImplementedError

    def load_backbone(self) -> Any:
        """Build the backbone from the files found by `resolve_weights`, on self.device in self.dtype."""
        raise NotImplementedError

    @property
    def backbone(self) -> Any:
        if self._backbone is None:
            if self._injected is not None:
                import torch

                injected = self._injected
                is_object = isinstance(injected, torch.nn.Module) or dataclasses.is_dataclass(injected)
                self._backbone = injected() if callable(injected) and not is_object else injected
            else:
                key = (type(self).__qualname__, repr(sorted(self._weights.items())), self.device, self.dtype)
                if key not in _LOADED:
                    logger.info("loading %s backbone on %s (%s)", self.name, self.device, self.dtype)
                    _LOADED[key] = self.load_backbone()
                self._backbone = _LOADED[key]
        return self._backbone

    def identity(self) -> dict[str, Any]:
        weights = self._weights if self._weights is not None else {"injected_sha256": backbone_digest(self.backbone)}
        return {**super().identity(), "weights": weights}


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
