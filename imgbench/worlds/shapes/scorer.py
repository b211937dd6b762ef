"""`shapes-exact`: the exact checker as a Scorer (1 if the image matches its prompt's spec, else 0)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL.Image import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.api.scorer import Scorer
from imgbench.errors import UserError
from imgbench.worlds.shapes.checker import check


class ShapesExactScorer(Scorer):
    """Reads the spec from `prompt.metadata["spec"]` (the shapes tasks put it there), never the text."""

    name = "shapes-exact"
    version = 6  # 6: soft corner moment for disc vs square; taper, tints, 3 px margin (tests/fixtures/shapes_labelled)
    value_range = (0.0, 1.0)
    higher_is_better = True

    def score(self, images: Sequence[Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        results = []
        for image, prompt in zip(images, prompts, strict=True):
            spec = prompt.metadata.get("spec")
            if not spec:
                raise UserError(f"shapes-exact scores prompts of the shapes tasks only: prompt {prompt.id!r} "
                                f"({prompt.text!r}) has no metadata['spec']. Use --task shapes (or shapes-val).")
            verdict = check(image, spec)
            results.append(ScoreResult(value=float(verdict["correct"]), details={"skill": spec["skill"], **verdict}))
        return results
