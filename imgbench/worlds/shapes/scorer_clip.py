"""`shapes-clip`: CLIPScore (Hessel et al., 2021) with the shapes world's own contrastive CLIP.

A learned, fallible judge beside the exact one, so agreement studies in the shapes world can ask
how often a CLIPScore-like metric ranks images the way ground truth does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.records import Prompt, ScoreResult
from imgbench.api.scorer import Scorer
from imgbench.errors import UserError
from imgbench.needs import Need, note
from imgbench.util.hashing import sha256_bytes
from imgbench.worlds.shapes import nets
from imgbench.worlds.shapes.model import check_vocabulary
from imgbench.worlds.shapes.render import CANVAS

SHIPPED = Path(__file__).parent / "weights" / "clip"
WEIGHT = 2.5  # CLIPScore's w (Hessel et al., 2021, §3)


class ShapesClipScorer(Scorer):
    name = "shapes-clip"
    version = 1
    value_range = (0.0, WEIGHT)
    higher_is_better = True

    def __init__(self, model_path: str | None = None) -> None:
        super().__init__()
        self.folder = Path(model_path) if model_path else SHIPPED
        weights = self.folder / "model.safetensors"
        if not weights.exists():
            raise UserError(f"shapes-clip weights are missing ({weights}). Train and export them: "
                            f"`imgbench train shapes clip --workdir W --steps 1500 --export`.")
        self._digest = sha256_bytes(weights.read_bytes() + (self.folder / "config.json").read_bytes())
        note(Need("local", "scorer 'shapes-clip'", str(self.folder), where=str(self.folder)))
        self._parts: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "weights_sha256": self._digest}

    def _load(self) -> dict[str, Any]:
        if self._parts is None:
            from transformers import CLIPModel

            self._parts = {"model": CLIPModel.from_pretrained(self.folder).eval(),
                           "tokenizer": nets.load_tokenizer(self.folder / "tokenizer")}
        return self._parts

    def score(self, images: Sequence[Image.Image], prompts: Sequence[Prompt]) -> list[ScoreResult]:
        import torch

        from imgbench.worlds.shapes.clip import image_inputs
        from imgbench.worlds.shapes.model import fixed_chunks

        check_vocabulary([p.text for p in prompts])
        parts = self._load()
        pixels = np.stack([np.asarray(im.convert("RGB").resize((CANVAS, CANVAS), Image.Resampling.BOX))
                           for im in images])
        ids = nets.tokenize(parts["tokenizer"], [p.text for p in prompts])
        model = parts["model"]
        with torch.no_grad():  # fixed chunks: a batch gives the same scores as one image at a time
            image_emb = fixed_chunks(lambda x: model.get_image_features(pixel_values=x).pooler_output,
                                     image_inputs(pixels))
            text_emb = fixed_chunks(lambda i: model.get_text_features(input_ids=i).pooler_output, ids)
        cos = torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1)
        return [ScoreResult(value=WEIGHT * max(float(c), 0.0), details={"cosine": float(c)}) for c in cos]

