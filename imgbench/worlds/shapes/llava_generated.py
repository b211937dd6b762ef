"""Training examples for `shapes-llava` from the shapes model's own drawings (the paper's LLaVA finetune
data: real generations, with instructions from what is wrong in them).

Renders with one injected error (`llava_data`) teach the instruction grammar, but generated images
fail differently (blobby shapes, tints, several errors at once), and an MLLM trained on renders alone
answers those poorly. So the shapes model draws the train captions, the exact checker compares each
drawing with its caption, and the target is one valid single-step fix of that diff, picked in a fixed
order (move, recolour, reshape, remove, add) so that equal diffs always get the same instruction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.api.records import GenerationRequest
from imgbench.errors import UserError
from imgbench.provenance import data_record
from imgbench.worlds.shapes import seeds
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.edits import NOTHING, Edit, Scene, distance, is_valid_fix
from imgbench.worlds.shapes.grammar import COLORS, SHAPES
from imgbench.worlds.shapes.llava_data import QUESTION
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.scorer import ShapesExactScorer
from imgbench.worlds.shapes.tasks import split_prompts

BATCH = 64


def candidate_edits(scene: Scene, spec: dict[str, Any]) -> list[Edit]:
    """Every edit the grammar can say about this scene and spec, in the order fixes are preferred."""
    scene = [(c, s) for c, s in scene if c in COLORS]  # an off-palette blob has no name in the grammar
    edits = []
    relation = spec.get("relation")
    if relation:
        a, b = spec["objects"][relation["a"]]["shape"], spec["objects"][relation["b"]]["shape"]
        edits.append(Edit("move", a, rel=relation["rel"], other=b))
    edits += [Edit("recolor", s, c, new_color=n) for c, s in scene for n in COLORS if n != c]
    edits += [Edit("reshape", s, c, new_shape=n) for c, s in scene for n in SHAPES if n != s]
    edits += [Edit("remove", s, c) for c, s in scene]
    edits += [Edit("add", o["shape"], o.get("color")) for o in spec["objects"]]
    return edits


def fixing_instruction(scene: Scene, spec: dict[str, Any], position_ok: bool) -> str:
    """NOTHING for a correct image, else the first valid single-step fix (None: no single edit helps)."""
    if distance(scene, spec) == 0 and position_ok:
        return NOTHING
    return next((e.text() for e in candidate_edits(scene, spec) if is_valid_fix(e, scene, spec, position_ok)), None)


def build(model: Any, out: str | Path, per_caption: int = 2, first_seed: int = seeds.LLAVA_DATA_FIRST_SEED,
          split: str = "train") -> dict[str, Any]:
    """Draw every caption of the split `per_caption` times, label each drawing with its fix, save to `out` (.npz).

    Drawing i gets seed `first_seed + i`: a noise tensor (a layout) of its own, from the parts' seed range,
    never a test or val seed (DESIGN §8)."""
    prompts = split_prompts(split)
    drawing_seeds = seeds.check_part_seeds(range(first_seed, first_seed + per_caption * len(prompts)),
                                           "llava-data")
    requests = [GenerationRequest(p, s, CANVAS, CANVAS)
                for p, s in zip(prompts * per_caption, drawing_seeds, strict=True)]
    pixels, questions, answers = [], [], []
    for start in range(0, len(requests), BATCH):
        chunk = requests[start:start + BATCH]
        for request, image in zip(chunk, model.generate(chunk), strict=True):
            verdict = check(image, request.prompt.metadata["spec"])
            scene = [(d["color"], d["shape"]) for d in verdict["detected"]]
            answer = fixing_instruction(scene, request.prompt.metadata["spec"],
                                        verdict["aspects"]["position"] is not False)
            if answer is None:
                continue
            pixels.append(np.asarray(image.convert("RGB")))
            questions.append(QUESTION.format(prompt=request.prompt.text))
            answers.append(answer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, pixels=np.stack(pixels), questions=np.array(questions), answers=np.array(answers))
    tmp.replace(out)
    stats = {"images": len(requests), "examples": len(answers), "nothing_to_change": answers.count(NOTHING),
             "data": data_record(drawing_seeds, seeds.SPLIT_VERSION, captions=split, per_caption=per_caption),
             "split": split, "model": model.identity(),
             "checker": {"name": ShapesExactScorer.name, "version": ShapesExactScorer.version}}
    out.with_suffix(".json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def load(path: str | Path) -> tuple[np.ndarray, list[str], list[str]]:
    if not Path(path).is_file():
        raise UserError(f"{path} does not exist; make it with `imgbench train shapes llava-data --out {path}`.")
    with np.load(path) as data:
        return data["pixels"], [str(q) for q in data["questions"]], [str(a) for a in data["answers"]]


def data_of(path: str | Path) -> dict[str, Any]:
    """The `data` record (seeds, split version) written beside an .npz by `build`; older files have none."""
    record = Path(path).with_suffix(".json")
    data = json.loads(record.read_text()).get("data") if record.is_file() else None
    if not isinstance(data, dict) or "seeds" not in data:
        raise UserError(f"{path} has no record of the seeds its drawings used ({record}), so a part trained on it "
                        f"could not say whether it saw test noise; redraw it with `imgbench train shapes llava-data "
                        f"--out {path}`.")
    return data
