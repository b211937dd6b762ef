"""Edit fidelity of `shapes-ip2p`: does the editor do what a correct instruction says, and only that?

Items: the shapes model's drawings of the val and test captions at the test seeds. Each drawing's scene
is what the checker reads; its ground-truth instruction is the grammar's fix for the diff with its caption
(`llava_generated.fixing_instruction`: "nothing to change" for a correct drawing; drawings no single edit
helps are left out and counted). The editor applies the instruction with the drawing's seed, and

- *intended*: the checker reads the intended scene after it — the fix applied to the read scene (an `add`
  without a colour takes any colour; a `move` keeps the scene and must make the named relation hold);
- *kept*: every object the instruction does not name is still there with its shape and colour;
- for "nothing to change": the scene read afterwards is the scene read before.

The baseline is regeneration: the base model draws a caption of the intended scene (`llava_data.caption_of`,
plus the relation for a move) with the same seed, judged by the same rule. Differences are paired per item,
with a bootstrap over captions (each caption's seeds share its wording and its spec).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.worlds.shapes.checker import Detection, _relation_holds, check, detect
from imgbench.worlds.shapes.edits import NOTHING, Edit, Scene, apply, parse
from imgbench.worlds.shapes.grammar import NUMBER_WORDS
from imgbench.worlds.shapes.llava_data import caption_of
from imgbench.worlds.shapes.llava_generated import fixing_instruction
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.tasks import split_prompts

KINDS = ("add", "remove", "recolor", "reshape", "move", "none")
BATCH = 64
RESAMPLES = 2000


def intended_scene(edit: Edit, scene: Scene) -> Scene:
    """The scene the instruction asks for (an uncoloured `add` keeps colour None: any colour will do)."""
    if edit.kind in ("none", "move"):
        return list(scene)
    if edit.kind == "add":
        return list(scene) + [(edit.color, edit.shape)]  # type: ignore[list-item]
    after = apply(edit, scene)
    assert after is not None, f"a fixing instruction names an object of the scene: {edit} {scene}"
    return after


def named_index(edit: Edit, scene: Scene) -> int | None:
    """Which object the instruction acts on (the grammar's first match), None for add and none."""
    if edit.kind in ("add", "none"):
        return None
    color = None if edit.kind == "move" else edit.color
    return next(i for i, (c, s) in enumerate(scene) if s == edit.shape and color in (None, c))


def reads_as(found: list[Detection], want: Scene, edit: Edit) -> bool:
    """Whether detections are the wanted scene (a colour of None matches any), and for a move whether the
    named relation holds between an object of each named shape."""
    got = Counter((d.color, d.shape) for d in found)
    wild = [s for c, s in want if c is None]
    exact = Counter((c, s) for c, s in want if c is not None)
    rest = got - exact
    if sum(exact.values()) + len(wild) != sum(got.values()) or exact - got:
        return False
    if sorted(s for _, s in rest.elements()) != sorted(wild):
        return False
    if edit.kind == "move":
        return any(_relation_holds(a, b, edit.rel or "") for a in found if a.shape == edit.shape
                   for b in found if b.shape == edit.other)
    return True


def kept_unnamed(found: list[Detection], scene: Scene, edit: Edit) -> bool:
    """Every object the instruction does not name is still there (shape and colour)."""
    index = named_index(edit, scene)
    unnamed = Counter(obj for i, obj in enumerate(scene) if i != index)
    return not unnamed - Counter((d.color, d.shape) for d in found)


def regeneration_caption(edit: Edit, want: Scene) -> str:
    """A caption of the intended scene in the world's words; a move says the relation first. No caption asks
    for an empty canvas, so an empty scene gets the empty caption (the model's unconditional drawing)."""
    def phrase(color: str | None, shape: str) -> str:
        return f"a {color} {shape}" if color else f"a {shape}"

    if edit.kind == "move":
        first = next(i for i, (_, s) in enumerate(want) if s == edit.shape)
        second = next(i for i, (_, s) in enumerate(want) if s == edit.other)
        rest = [obj for i, obj in enumerate(want) if i not in (first, second)]
        head = f"{phrase(*want[first])} {edit.rel} {phrase(*want[second])}"
        return " and ".join([head] + ([caption_of([{"color": c, "shape": s} for c, s in rest])] if rest else []))
    colored = [{"color": c, "shape": s} for c, s in want if c is not None]
    if any(n > max(NUMBER_WORDS) for n in Counter((o["color"], o["shape"]) for o in colored).values()):
        return " and ".join(phrase(o["color"], o["shape"]) for o in colored)
    parts = [caption_of(colored)] if colored else []
    parts += [phrase(None, s) for c, s in want if c is None]
    return " and ".join(parts)


def items(model: Any, splits: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One row per drawing with a single-step fix: prompt, seed, image, read scene, instruction."""
    prompts = [p for split in splits for p in split_prompts(split)]
    requests = [GenerationRequest(p, s, CANVAS, CANVAS) for p in prompts for s in seeds]
    rows = []
    for start in range(0, len(requests), BATCH):
        chunk = requests[start:start + BATCH]
        for request, image in zip(chunk, model.generate(chunk), strict=True):
            spec = request.prompt.metadata["spec"]
            verdict = check(image, spec)
            scene = [(d["color"], d["shape"]) for d in verdict["detected"]]
            instruction = fixing_instruction(scene, spec, verdict["aspects"]["position"] is not False)
            rows.append({"prompt": request.prompt, "seed": request.seed, "image": image, "scene": scene,
                         "instruction": instruction})
    return rows


def evaluate(model: Any, editor: Any, rows: list[dict[str, Any]], regenerate: bool = True,
             nothing_limit: int | None = None) -> list[dict[str, Any]]:
    """Per fixable row: kind, editor outcome (intended, kept) and the regeneration baseline's. With
    `nothing_limit`, "nothing to change" rows (the majority: correct drawings) are thinned to about that many,
    evenly over the list (a fixed rule, so every editor setting sees the same rows)."""
    fixable = [r for r in rows if r["instruction"] is not None]
    nothing = [r for r in fixable if r["instruction"] == NOTHING]
    if nothing_limit is not None and len(nothing) > nothing_limit:
        step = len(nothing) / nothing_limit
        chosen = {id(nothing[int(i * step)]) for i in range(nothing_limit)}
        fixable = [r for r in fixable if r["instruction"] != NOTHING or id(r) in chosen]
    results = []
    for start in range(0, len(fixable), BATCH):
        chunk = fixable[start:start + BATCH]
        edits = [parse(r["instruction"]) for r in chunk]
        edited = editor.edit([r["image"] for r in chunk], [r["instruction"] for r in chunk],
                             [r["seed"] for r in chunk])
        wants = [intended_scene(e, r["scene"]) for e, r in zip(edits, chunk, strict=True)]
        captions = [regeneration_caption(e, w) for e, w in zip(edits, wants, strict=True)]
        redrawn: list[Image.Image | None] = [None] * len(chunk)
        if regenerate:
            redrawn = list(model.generate([GenerationRequest(Prompt(id=f"regen-{i}", text=c), r["seed"], CANVAS,
                                                             CANVAS) for i, (c, r) in enumerate(zip(captions, chunk,
                                                                                                    strict=True))]))
        for row, edit, want, after, again, caption in zip(chunk, edits, wants, edited, redrawn, captions, strict=True):
            found = detect(after)
            result = {"prompt": row["prompt"].id, "seed": row["seed"], "kind": edit.kind,
                      "instruction": row["instruction"], "intended": reads_as(found, want, edit),
                      "kept": kept_unnamed(found, row["scene"], edit), "regeneration_caption": caption}
            if again is not None:
                result["regeneration_intended"] = reads_as(detect(again), want, edit)
            results.append(result)
    return results


def _paired_interval(rows: list[dict[str, Any]], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(editor − regeneration), resampling captions."""
    by_prompt: dict[str, list[float]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(float(r["intended"]) - float(r["regeneration_intended"]))
    groups = list(by_prompt.values())
    sums, counts = np.array([sum(g) for g in groups]), np.array([len(g) for g in groups])
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(groups), size=(RESAMPLES, len(groups)))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def summary(results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares overall and per kind, the paired difference to regeneration, and the acceptance checks."""
    def block(part: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"n": len(part)}
        if not part:
            return out
        out["editor_intended"] = float(np.mean([r["intended"] for r in part]))
        out["editor_kept_unnamed"] = float(np.mean([r["kept"] for r in part]))
        if "regeneration_intended" in part[0]:
            out["regeneration_intended"] = float(np.mean([r["regeneration_intended"] for r in part]))
            out["difference"] = out["editor_intended"] - out["regeneration_intended"]
            out["difference_ci95"] = _paired_interval(part)
        return out

    edits = [r for r in results if r["kind"] != "none"]
    per_kind = {kind: block([r for r in results if r["kind"] == kind]) for kind in KINDS}
    overall = block(edits)
    beats = [k for k in KINDS[:-1] if per_kind[k].get("difference", 0) > 0]
    return {"drawings": len(rows), "no_single_fix": sum(r["instruction"] is None for r in rows),
            "nothing_to_change": per_kind["none"].get("n", 0), "overall_edits": overall, "per_kind": per_kind,
            "checks": {"beats_regeneration_overall": overall.get("difference", 0) > 0,
                       "kinds_beating_regeneration": beats,
                       "kept_unnamed_at_least_80pct": overall.get("editor_kept_unnamed", 0) >= 0.8,
                       "nothing_keeps_scene_at_least_90pct": per_kind["none"].get("editor_intended", 0) >= 0.9}}

