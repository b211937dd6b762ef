"""The `base` method: the model's own generation for (prompt, seed), nothing added."""

from __future__ import annotations

from collections.abc import Sequence

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest


class BaseMethod(Method):
    """Plain generation. `--model sdxl-dpo --method base` is the "SDXL-DPO" leaderboard row."""

    name = "base"

    def __init__(self) -> None:
        super().__init__()

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        return [Generation(image=image) for image in model.generate(requests)]
