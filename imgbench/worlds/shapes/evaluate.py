"""Exact-checker accuracy of a trained snapshot on a split: how checkpoints and CFG scales are chosen (on val)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from imgbench.api.records import GenerationRequest
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.model import ShapesModel
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.tasks import split_prompts

BATCH = 64


def evaluate_snapshot(folder: str | Path, split: str, guidance: float, seeds: list[int],
                      steps: int = 25) -> dict[str, Any]:
    """Accuracy overall and per skill, plus failure reasons, for every (prompt, seed) of the split."""
    model = ShapesModel(model_path=str(folder), guidance=guidance, steps=steps)
    requests = [GenerationRequest(p, s, CANVAS, CANVAS) for p in split_prompts(split) for s in seeds]
    hits: dict[str, list[bool]] = defaultdict(list)
    reasons: Counter[str] = Counter()
    for start in range(0, len(requests), BATCH):
        chunk = requests[start:start + BATCH]
        for request, image in zip(chunk, model.generate(chunk), strict=True):
            verdict = check(image, request.prompt.metadata["spec"])
            hits[request.prompt.tags[0]].append(verdict["correct"])
            reasons[verdict["reason"].split(" (")[0]] += 1
    flat = [h for v in hits.values() for h in v]
    return {"split": split, "guidance": guidance, "seeds": seeds, "steps": steps, "n": len(flat),
            "accuracy": sum(flat) / len(flat), "by_skill": {k: sum(v) / len(v) for k, v in hits.items()},
            "reasons": dict(reasons.most_common())}
