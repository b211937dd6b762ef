"""The `reroll` control: base generation with fresh noise for every item.

A method that draws an image and then draws again (IMG, Instruct-Pix2Pix, SLD) gets a second sample;
if the scorer rewards some samples over others, a second draw alone moves the mean. `reroll` draws each
(prompt, seed) with seed + `offset` (default `imgbench.controls.REROLL_OFFSET`, outside every task's and
every trained part's seeds) and nothing else, so "method vs reroll" asks what the method adds beyond
drawing again. It is paired with the other runs by the item's own seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.controls import REROLL_OFFSET
from imgbench.errors import UserError


class RerollMethod(Method):
    name = "reroll"

    def __init__(self, offset: int = REROLL_OFFSET) -> None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 1:
            raise UserError(f"reroll's offset must be a whole number of at least 1, got {offset!r}.")
        super().__init__(offset=offset)

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        shifted = [replace(r, seed=r.seed + self.params["offset"]) for r in requests]
        return [Generation(image=image, info={"drawn_with_seed": r.seed})
                for image, r in zip(model.generate(shifted), shifted, strict=True)]
