"""SLD on the shapes world: the rule planner (parse and the correction rule), the shapes backend's latent
operations (footprints, frozen steps, inversion round trip) on the shipped model, batch independence, and
`imgbench run --method sld --task shapes --method-arg detector=oracle` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from imgbench.methods.sld.backends import ShapesBackend
from imgbench.methods.sld.latent_ops import LatentEditor, box_mask
from imgbench.methods.sld.op_check import check
from imgbench.methods.sld.operations import Operation, diff
from imgbench.methods.sld.shapes_planner import ShapesPlanner
from PIL import Image

from imgbench.worlds.shapes import checker
from imgbench.worlds.shapes.detector import oracle
from imgbench.worlds.shapes.render import RELATION_MARGIN, Placed, draw, render


def det(name: str, left: int, top: int, size: int = 9) -> dict:
    return {"name": name, "box": [left / 32, top / 32, size / 32, size / 32], "score": 1.0}


def correct(caption: str, detections: list[dict]) -> tuple[list[dict], list[Operation]]:
    planner = ShapesPlanner()
    parse, _ = planner.parse(caption)
    layout, record = planner.correct(caption, parse, detections)
    assert record["fallback"] is None and planner.calls == 2
    return layout, diff(detections, layout)


@pytest.mark.parametrize(("caption", "objects", "relation"), [
    ("a photo of a single square", [("square", [None])], None),
    ("three triangles", [("triangle", [None] * 3)], None),
    ("a drawing of one yellow circle", [("circle", ["yellow"])], None),
    ("a circle and a square", [("circle", [None]), ("square", [None])], None),
    ("a red triangle and a blue square.", [("triangle", ["red"]), ("square", ["blue"])], None),
    ("A circle above a triangle", [("circle", [None]), ("triangle", [None])], {"a": 0, "rel": "above", "b": 1}),
])
def test_the_rule_planner_reads_captions_with_the_worlds_grammar(caption, objects, relation) -> None:
    parse, record = ShapesPlanner().parse(caption)
    assert [(o["name"], o["attributes"]) for o in parse.objects] == objects
    assert [o["count"] for o in parse.objects] == [len(a) for _, a in objects]
    assert (parse.background, parse.negation, record["relation"]) == ("", None, relation)


def test_a_text_outside_the_grammar_gets_no_parse() -> None:
    parse, record = ShapesPlanner().parse("a dog on a sofa")
    assert parse is None and record["fallback"] == "no correction"


def test_correction_rule_adds_deletes_recolours_and_keeps() -> None:
    layout, ops = correct("a red circle and a blue square", [det("red circle #1", 4, 4)])
    ((add,),) = [ops]
    assert add.kind == "add" and add.name == "blue square #1"
    left, top, width, height = (round(v * 32) for v in add.new_box)
    assert width == height == 9 and left % 2 == top % 2 == 0 and left + width <= 31 and top + height <= 31
    assert left >= 4 + 9 + 2 or top >= 4 + 9 + 2  # clear of the kept circle by the renderer's gap
    _, ops = correct("a red circle", [det("red circle #1", 4, 4), det("blue square #1", 20, 20)])
    assert [(op.kind, op.name) for op in ops] == [("delete", "blue square #1")]
    _, ops = correct("a red circle and a blue square", [det("red circle #1", 4, 4), det("green square #1", 20, 20)])
    assert [(op.kind, op.name, op.new_name) for op in ops] == [("attribute", "green square #1", "blue square #1")]
    _, ops = correct("a square and a circle", [det("red square #1", 4, 4), det("blue square #1", 20, 20)])
    assert sorted(op.kind for op in ops) == ["add", "delete"]  # a wrong shape is replaced, not renamed
    assert correct("a circle left of a square", [det("red circle #1", 4, 4), det("blue square #1", 20, 20)])[1] == []
    _, ops = correct("three circles", [det("red circle #1", 2, 2, 8), det("red circle #2", 12, 2, 8)])
    assert [(op.kind, op.name) for op in ops] == [("add", "circle #1")]  # a new name never reuses a detected one


def centre(box) -> tuple[float, float]:
    return box[0] * 32 + (box[2] * 32 - 1) / 2, box[1] * 32 + (box[3] * 32 - 1) / 2


def test_a_failed_relation_moves_the_second_object_by_the_renderers_margin() -> None:
    detections = [det("red circle #1", 18, 4), det("blue square #1", 4, 20)]
    layout, ops = correct("a circle left of a square", detections)
    assert [(op.kind, op.name) for op in ops] == [("reposition", "blue square #1")]
    boxes = {item["name"]: item["box"] for item in layout}
    assert centre(boxes["blue square #1"])[0] - centre(boxes["red circle #1"])[0] >= RELATION_MARGIN
    layout, ops = correct("a circle left of a square", [det("red circle #1", 20, 4), det("blue square #1", 4, 20)])
    boxes = {item["name"]: item["box"] for item in layout}  # no room for the square alone: both move
    assert {op.kind for op in ops} == {"reposition"} and len(ops) == 2
    assert centre(boxes["blue square #1"])[0] - centre(boxes["red circle #1"])[0] >= RELATION_MARGIN


def test_the_oracle_reads_the_checkers_objects() -> None:
    image = render({"objects": [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}],
                    "relation": None}, 3)
    found = oracle([image])[0]
    assert sorted((f.color, f.shape) for f in found) == [("blue", "square"), ("red", "circle")]
    for f in found:
        assert f.mask.shape == (32, 32) and f.mask.dtype == bool and f.score == 1.0
        x, y, w, h = (round(v * 32) for v in f.box)
        assert f.mask[y:y + h, x:x + w].sum() == f.mask.sum()


@pytest.fixture(scope="module")
def shapes_model():
    from imgbench.worlds.shapes.model import ShapesModel

    return ShapesModel()


@pytest.fixture(scope="module")
def shapes_editor(shapes_model):
    edit = LatentEditor(ShapesBackend(shapes_model), steps=5, guidance=1.0, object_guidance=1.0,
                        inversion_guidance=1.0, frozen_step_ratio=0.5, attribute_strength=0.5, dilate=0,
                        inversion_floor=0.01, attribute_noise=True)
    image = Image.fromarray(draw([Placed("red", "circle", 4, 4, 9), Placed("blue", "square", 18, 18, 9)]))
    with torch.inference_mode():
        return edit, edit.invert(image)

def px(left: int, top: int, size: int = 9) -> tuple[float, ...]:
    return left / 32, top / 32, size / 32, size / 32


OPS = [Operation("delete", "red circle #1", px(4, 4)),
       Operation("reposition", "blue square #1", px(18, 18), px(2, 20)),
       Operation("attribute", "red circle #1", px(4, 4), px(4, 4), "green circle #1"),
       Operation("add", "yellow triangle #1", None, px(20, 2, 8))]


@pytest.mark.parametrize("op", OPS, ids=[op.kind for op in OPS])
def test_each_operation_on_the_shapes_backend_touches_only_its_mask(shapes_editor, op) -> None:
    edit, background = shapes_editor
    assert background.shape == (edit.steps + 1, 1, 12, 16, 16) and edit.steps == 4  # ᾱ(999) < 0.01: skipped
    masks = {"red circle #1": box_mask(OPS[0].old_box, 16, 16), "blue square #1": box_mask(OPS[1].old_box, 16, 16)}
    with torch.inference_mode():
        composition = edit.compose(background, [op], masks, lambda image, name: (
            [0.25, 0.25, 0.25, 0.25], box_mask([0.25, 0.25, 0.25, 0.25], 16, 16)), seed=1)
    ((done, mask),) = composition.masks
    changed = (composition.latents != background).flatten(0, 2).any(0)
    assert done == op and changed.any() and not (changed & ~mask).any()
    assert changed[mask].float().mean() > 0.5


def test_frozen_steps_hold_the_composition_on_the_shapes_backend(shapes_editor, monkeypatch) -> None:
    edit, background = shapes_editor
    with torch.inference_mode():
        composition = edit.compose(background, OPS[:2], {}, lambda image, name: None, seed=0)
        inputs, denoise = [], edit.backend.model.denoise
        monkeypatch.setattr(edit.backend.model, "denoise", lambda x, *a: inputs.append(x[0].clone()) or denoise(x, *a))
        image = edit.regenerate(composition, "a circle left of a square")
    frozen, k = composition.frozen, edit.frozen_steps
    assert image.size == (32, 32) and len(inputs) == edit.steps and k == 2 and frozen.any() and (~frozen).any()
    assert frozen[box_mask(OPS[0].old_box, 16, 16)].all()  # a deleted region holds the blank canvas's trajectory
    for i in range(k + 1):
        assert torch.equal(inputs[i][:, frozen], composition.latents[i][0][:, frozen])
    assert not torch.equal(inputs[k + 1][:, frozen], composition.latents[k + 1][0][:, frozen])


def test_ddim_inversion_reconstructs_a_drawing(shapes_model) -> None:
    """At the model's 25 trailing steps, skipping the two rungs with ᾱ < 0.01 (docs/sld.md)."""
    edit = LatentEditor(ShapesBackend(shapes_model), steps=25, guidance=1.0, object_guidance=1.0,
                        inversion_guidance=1.0, inversion_floor=0.01)
    drawing = Image.fromarray(draw([Placed("red", "circle", 2, 3, 10), Placed("blue", "square", 4, 18, 9)]))
    with torch.inference_mode():
        trajectory = edit.invert(drawing)
        again = edit.backend.decode(edit.sample("", trajectory[0], 1.0)[-1])
    assert edit.steps == 23
    assert np.abs(np.asarray(drawing, dtype=int) - np.asarray(again, dtype=int)).mean() < 8
    assert sorted((d.color, d.shape) for d in checker.detect(again)) == [("blue", "square"), ("red", "circle")]


def test_the_operation_check_reads_the_final_image() -> None:
    after = Image.fromarray(draw([Placed("green", "circle", 4, 4, 9), Placed("blue", "square", 2, 20, 9)]))
    assert check(OPS[2], after)  # the circle at (4, 4) is green now
    assert check(OPS[0], after)  # no red circle left where it was
    assert not check(OPS[3], after)  # no yellow triangle was added
    assert not check(OPS[1], after)  # the square is not at its new place (top 20, left 2)...
    assert check(OPS[1], Image.fromarray(draw([Placed("blue", "square", 21, 3, 9)])))  # ...within 3 px it is


def sld_method(**extra):
    from imgbench.methods.sld.method import SLDMethod

    return SLDMethod(**{"planner": "shapes-grammar", "detector": "oracle", "steps": 5, "guidance": 1.0,
                        "object_guidance": 1.0, "inversion_guidance": 1.0, "inversion_floor": 0.01, "dilate": 0,
                        "resolution": 32, **extra})


def test_a_batch_gives_each_item_what_it_gets_alone(shapes_model) -> None:
    from imgbench.api.records import GenerationRequest, Prompt

    requests = [GenerationRequest(prompt=Prompt(id=str(i), text=text), seed=seed, height=32, width=32)
                for i, (text, seed) in enumerate([("three circles", 5), ("a red square and a blue circle", 2),
                                                  ("a triangle below a circle", 7)])]
    method = sld_method(reuse_base=False)
    together = method.generate(requests, shapes_model)
    alone = sld_method(reuse_base=False).generate(requests[1:2], shapes_model)
    assert np.array_equal(np.asarray(together[1].image), np.asarray(alone[0].image))
    assert together[1].info["operations_checked"] == alone[0].info["operations_checked"]
    assert method.identity()["resolved"]["detector"]["upper_bound"] is True
    assert method.identity()["resolved"]["planner"]["planner"] == "shapes-grammar"
    assert "sam" not in method.identity()["params"] and "sam" not in method.identity()["resolved"]


def test_run_method_sld_on_shapes_with_the_oracle(cli, tmp_path) -> None:
    status, _, stderr = cli("run", "--method", "sld", "--task", "shapes", "--method-arg", "detector=oracle",
                            "--method-arg", "steps=5", "--seeds", "3", "--limit", "4", "--tags", "counting",
                            "--scorer", "shapes-exact", "--output", tmp_path)
    assert status == 0, stderr
    (run,) = (tmp_path / "runs" / "shapes" / "shapes" / "sld").iterdir()
    manifest = json.loads((run / "run.json").read_text())
    resolved = manifest["identity"]["method"]["resolved"]
    assert resolved["detector"]["detector"] == "oracle" and resolved["planner"]["planner"] == "shapes-grammar"
    assert manifest["identity"]["method"]["params"]["resolution"] == 32
    items = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert len(items) == 4
    for item in items:
        cost = item["info"]["cost"]
        assert {"planner_calls", "detector_calls", "denoising_steps", "seconds"} <= set(cost)
        assert cost["planner_calls"] == 2 and cost["detector_calls"] >= 1
        operations = json.loads((run / item["artefacts"]["operations"]).read_text())
        assert len(item["info"]["operations_checked"]) == len(operations)
        assert all(isinstance(c["ok"], bool) for c in item["info"]["operations_checked"])
    assert any(item["info"]["corrected"] for item in items)


@pytest.mark.parametrize(("arg", "message"), [("detector=bogus", "neither an OWLv2 hub id"),
                                              ("rounds=0", "rounds must be a whole number")])
def test_bad_method_args_exit_2_with_a_message(cli, tmp_path, arg, message) -> None:
    status, _, stderr = cli("run", "--method", "sld", "--task", "shapes", "--method-arg", arg, "--limit", "1",
                            "--output", tmp_path)
    assert status == 2 and message in stderr, stderr
