"""Instruction accuracy of the shapes MLLMs on generated, misaligned images (the paper's 76% vs 42% study).

The shapes model draws the test split; images the checker rejects are asked "How to make the image
match the prompt: {prompt}?"; an answer counts if it parses into an edit that is a valid single-step
fix of the checker's diff. The majority baseline always gives the most frequent training instruction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgbench.api.records import GenerationRequest
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.edits import NOTHING, is_valid_fix, parse
from imgbench.worlds.shapes.llava_data import QUESTION, corrupt
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.seeds import TEST_SEEDS
from imgbench.worlds.shapes.tasks import split_prompts
from imgbench.worlds.shapes.train_unet import train_rows


def majority_instruction(n: int = 2000, seed: int = 0) -> str:
    """The most frequent fixing instruction among training targets of misaligned examples."""
    rows = [r for skill in train_rows() for r in skill]
    rng = np.random.default_rng(seed)
    counts: Counter[str] = Counter()
    for _ in range(n):
        _, spec = rows[int(rng.integers(len(rows)))]
        counts[corrupt(spec, rng)[1].text()] += 1
    counts.pop(NOTHING, None)
    return counts.most_common(1)[0][0]


def misaligned_cases(model: Any, split: str = "test",
                     seeds: Sequence[int] = tuple(TEST_SEEDS)) -> list[dict[str, Any]]:
    """(image, prompt, seed, detected scene, position_ok) for every generated image the checker rejects."""
    requests = [GenerationRequest(p, s, CANVAS, CANVAS) for p in split_prompts(split) for s in seeds]
    cases = []
    for start in range(0, len(requests), 64):
        chunk = requests[start:start + 64]
        for request, image in zip(chunk, model.generate(chunk), strict=True):
            verdict = check(image, request.prompt.metadata["spec"])
            if not verdict["correct"]:
                cases.append({"image": image, "prompt": request.prompt, "seed": request.seed,
                              "scene": [(d["color"], d["shape"]) for d in verdict["detected"]],
                              "position_ok": verdict["aspects"]["position"] is not False})
    return cases


def instruction_accuracy(answers: list[str], cases: list[dict[str, Any]]) -> float:
    ok = [is_valid_fix(parse(a), c["scene"], c["prompt"].metadata["spec"], c["position_ok"])
          for a, c in zip(answers, cases, strict=True)]
    return float(np.mean(ok)) if ok else float("nan")


def accuracy_by_seed(answers: list[str], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall and per seed: one seed is one layout for every prompt, so a figure from one seed is one draw."""
    seeds = sorted({c["seed"] for c in cases})
    picked = {s: [i for i, c in enumerate(cases) if c["seed"] == s] for s in seeds}
    return {"all": instruction_accuracy(answers, cases),
            "by_seed": {str(s): instruction_accuracy([answers[i] for i in index], [cases[i] for i in index])
                        for s, index in picked.items()}}


def evaluate(model: Any, mllms: dict[str, Any], split: str = "test",
             seeds: Sequence[int] = tuple(TEST_SEEDS)) -> dict[str, Any]:
    """Valid-fix rate of each MLLM (and of the majority instruction) on the misaligned drawings of every seed."""
    cases = misaligned_cases(model, split, seeds)
    questions = [QUESTION.format(prompt=c["prompt"].text) for c in cases]
    images = [c["image"] for c in cases]
    majority = majority_instruction()
    result = {"split": split, "seeds": list(seeds), "n_misaligned": len(cases),
              "n_misaligned_by_seed": {str(s): sum(c["seed"] == s for c in cases) for s in seeds},
              "majority_instruction": majority,
              "majority": accuracy_by_seed([majority] * len(cases), cases)}
    for name, mllm in mllms.items():
        result[name] = accuracy_by_seed(mllm.answer(images, questions), cases)
    return result
