"""The shapes grammar: disjoint deterministic splits, held-out compositions only in test, renders."""

from __future__ import annotations

import numpy as np

from imgbench import catalog
from imgbench.task import load_task
from imgbench.worlds.shapes import grammar
from imgbench.worlds.shapes.render import render


def _captions(split: str) -> set[str]:
    return {c for rows in grammar.splits()[split].values() for c, _, _ in rows}


def test_splits_are_disjoint_and_test_has_40_per_skill():
    train, val, test = _captions("train"), _captions("val"), _captions("test")
    assert not (train & val) and not (train & test) and not (val & test)
    for skill in grammar.SKILLS:
        assert len(grammar.splits()["test"][skill]) >= 40
        assert grammar.splits()["train"][skill], skill


def test_held_out_compositions_appear_only_in_test():
    def pairs(spec):
        return {(o["color"], o["shape"]) for o in spec["objects"] if o["color"]}

    def scenes(spec):
        rel = spec["relation"]
        if not rel:
            return set()
        a, b = spec["objects"][rel["a"]]["shape"], spec["objects"][rel["b"]]["shape"]
        return {(a, rel["rel"], b), (b, grammar.CONVERSE[rel["rel"]], a)}

    for split in ("train", "val"):
        for rows in grammar.splits()[split].values():
            for _, spec, held in rows:
                assert not held
                assert not pairs(spec) & grammar.HELD_OUT_PAIRS
                assert not scenes(spec) & grammar.HELD_OUT_SCENES
    test_rows = [r for rows in grammar.splits()["test"].values() for r in rows]
    assert any(pairs(spec) & grammar.HELD_OUT_PAIRS for _, spec, _ in test_rows)
    assert any(scenes(spec) & grammar.HELD_OUT_SCENES for _, spec, _ in test_rows)


def test_tasks_load_with_specs_tags_and_pinned_checksums():
    task = load_task(catalog.tasks().get("shapes").spec)
    assert len(task.prompts) == 240 and task.spec.default_model == "shapes"
    assert {p.tags[0] for p in task.prompts} == set(grammar.SKILLS)
    first = task.prompts[0]
    assert first.metadata["spec"]["skill"] == first.tags[0]
    for name in ("shapes-val", "shapes-train"):
        assert load_task(catalog.tasks().get(name).spec).spec.default_model == "shapes"


def test_render_is_deterministic_and_respects_relations():
    spec = grammar.spec_of("position", [{"shape": "circle", "color": "red", "count": 1},
                                        {"shape": "square", "color": "blue", "count": 1}],
                           {"a": 0, "rel": "left of", "b": 1})
    a, b = np.asarray(render(spec, 7)), np.asarray(render(spec, 7))
    assert np.array_equal(a, b) and not np.array_equal(a, np.asarray(render(spec, 8)))
    red_x = np.nonzero((a == (255, 0, 0)).all(-1))[1].mean()
    blue_x = np.nonzero((a == (0, 0, 255)).all(-1))[1].mean()
    assert red_x < blue_x


def test_unknown_words_are_named():
    assert grammar.unknown_words("A red circle.") == []
    assert grammar.unknown_words("a purple circle left of a horse") == ["purple", "horse"]
