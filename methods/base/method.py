"""The `base` method: the model's own generation for (prompt, seed), nothing added."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgbench.adopt import Adoptable, plain_generations
from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.store import ItemKey


class BaseMethod(Method):
    """Plain generation. `--model sdxl-dpo --method base` is the "SDXL-DPO" leaderboard row.

    An image another run of the same task and model already drew as its plain generation (IMG's initial
    image) is adopted, not redrawn; the item's record says from which run (imgbench.adopt).
    """

    name = "base"

    def __init__(self) -> None:
        super().__init__()
        self._adoptable: dict[ItemKey, Adoptable] = {}

    def prepare(self, context: Any) -> None:
        """Find sibling runs' plain generations (context: the runner's plan, with the run's folder and identity)."""
        if context is not None:
            self._adoptable = plain_generations(Path(context.store.root), context.identity)

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        from PIL import Image

        out: list[Generation | None] = [None] * len(requests)
        todo = []
        for index, request in enumerate(requests):
            held = self._adoptable.get((request.prompt.id, request.seed))
            try:
                with Image.open(held.path) as image:  # type: ignore[union-attr]
                    out[index] = Generation(image=image.convert("RGB"), info={"adopted": {
                        "from_run": held.run.root.name, "path": str(held.path)}})
            except (AttributeError, OSError):  # nothing held, or a damaged file: draw it
                todo.append(index)
        if todo:
            for index, image in zip(todo, model.generate([requests[i] for i in todo]), strict=True):
                out[index] = Generation(image=image)
        return [g for g in out if g is not None]
