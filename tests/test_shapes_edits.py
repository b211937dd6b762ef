"""The edit grammar: instructions round-trip through parse, and valid fixes follow the checker's diff."""

from __future__ import annotations

import pytest

from imgbench.worlds.shapes.edits import Edit, is_valid_fix, parse
from imgbench.worlds.shapes.grammar import spec_of

RED_CIRCLE_AND_BLUE_SQUARE = spec_of("color-attr", [{"shape": "circle", "color": "red", "count": 1},
                                                    {"shape": "square", "color": "blue", "count": 1}])
CIRCLE_LEFT_OF_SQUARE = spec_of("position", [{"shape": "circle", "color": None, "count": 1},
                                             {"shape": "square", "color": None, "count": 1}],
                                {"a": 0, "rel": "left of", "b": 1})


@pytest.mark.parametrize("text", ["add a red circle", "add a triangle", "remove the green square",
                                  "make the circle blue", "make the red circle a square",
                                  "put the circle left of the square", "nothing to change"])
def test_instructions_round_trip(text):
    edit = parse(text)
    assert edit is not None and edit.text() == text and parse(edit.text()) == edit


def test_outside_the_grammar_is_none():
    assert parse("draw a nicer picture") is None
    assert parse("make the circle purple") is None


@pytest.mark.parametrize(("scene", "instruction", "valid"), [
    ([("red", "circle")], "add a blue square", True),
    ([("red", "circle")], "add a square", True),
    ([("red", "circle")], "add a red square", False),
    ([("red", "circle"), ("blue", "square"), ("green", "triangle")], "remove the triangle", True),
    ([("red", "circle"), ("blue", "square"), ("green", "triangle")], "remove the circle", False),
    ([("red", "circle"), ("green", "square")], "make the square blue", True),
    ([("red", "circle"), ("blue", "triangle")], "make the triangle a square", True),
    ([("red", "circle"), ("blue", "square")], "nothing to change", True),
    ([("red", "circle"), ("blue", "square")], "add a triangle", False),
])
def test_valid_fixes(scene, instruction, valid):
    assert is_valid_fix(parse(instruction), scene, RED_CIRCLE_AND_BLUE_SQUARE) is valid


def test_move_is_the_fix_only_for_a_wrong_relation():
    scene = [("red", "circle"), ("blue", "square")]
    move = parse("put the circle left of the square")
    assert is_valid_fix(move, scene, CIRCLE_LEFT_OF_SQUARE, position_ok=False)
    assert not is_valid_fix(move, scene, CIRCLE_LEFT_OF_SQUARE, position_ok=True)
    assert not is_valid_fix(parse("put the square left of the circle"), scene, CIRCLE_LEFT_OF_SQUARE, False)
    assert not is_valid_fix(Edit("none"), scene, CIRCLE_LEFT_OF_SQUARE, position_ok=False)
