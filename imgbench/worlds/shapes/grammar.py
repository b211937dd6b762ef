"""The shapes world's caption grammar: captions, their exact specs, and the train/val/test splits.

Caption families mirror GenEval's six skills (Ghosh et al., NeurIPS 2023 D&B, §3): single object,
two objects, counting, colours, position and colour attribution. Every caption is built from a
structured spec (a JSON-able dict carried in `Prompt.metadata["spec"]`), so checking an image
never parses text.

Splits are disjoint in caption strings. Some compositions are held out of train and val entirely
and appear only in test — two colour–shape pairs and two spatial scenes (with their converses) —
so the trained model misaligns on unusual compositions the way real models do.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from typing import Any

COLORS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
RELATIONS = ("left of", "right of", "above", "below")
#: Each relation and its converse (A left of B is the same scene as B right of A).
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
#: Surface framings (GenEval says "a photo of ..."); the composition is what the skills test.
TEMPLATES = ("{}", "a photo of {}", "an image of {}", "a picture of {}", "a drawing of {}", "a render of {}",
             "a sketch of {}", "a painting of {}", "an illustration of {}", "a diagram of {}")
#: Ways to say "one" (the count of every singular object).
ARTICLES = ("a", "one", "a single")

#: Skill tags, in GenEval's order (slugs of single_object, two_object, ...).
SKILLS = ("single-object", "two-object", "counting", "colors", "position", "color-attr")
SPLITS = ("train", "val", "test")

#: Colour–shape pairs that appear only in test captions (colours and colour attribution).
HELD_OUT_PAIRS = frozenset({("yellow", "triangle"), ("blue", "circle")})
#: Spatial scenes (A, relation, B) that appear only in test captions, with their converses.
HELD_OUT_SCENES = frozenset({("triangle", "left of", "circle"), ("square", "above", "triangle")})

TEST_PER_SKILL = 40
VAL_PER_SKILL = 16
SPLIT_SEED = 0

GRAMMAR_HELP = (
    "The shapes world understands captions such as 'a red circle', 'three triangles', 'a square and a "
    "circle', 'a blue square left of a yellow circle', 'a photo of a green triangle and a red square'. "
    f"Colours: {', '.join(COLORS)}. Shapes: {', '.join(SHAPES)}. Counts: one to four. "
    f"Relations: {', '.join(RELATIONS)}."
)


def _obj(shape: str, color: str | None = None, count: int = 1) -> dict[str, Any]:
    return {"shape": shape, "color": color, "count": count}


def spec_of(skill: str, objects: list[dict[str, Any]], relation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The exact, JSON-able spec the checker compares an image against."""
    return {"skill": skill, "objects": objects, "relation": relation}


def fixes_scene(spec: dict[str, Any]) -> bool:
    """Whether a caption names every object's colour, so that it fixes the multiset of coloured shapes."""
    return all(o.get("color") for o in spec["objects"])


def _singular(article: str, obj: dict[str, Any]) -> str:
    words = [article] + ([obj["color"]] if obj["color"] else []) + [obj["shape"]]
    return " ".join(words)


def _compositions() -> Iterator[tuple[str, dict[str, Any], str, bool]]:
    """(skill, spec, core phrase, held_out) for every composition and wording of one."""
    for shape in SHAPES:
        for art in ARTICLES:
            yield "single-object", spec_of("single-object", [_obj(shape)]), _singular(art, _obj(shape)), False
    for n, word in NUMBER_WORDS.items():
        for shape in SHAPES:
            yield "counting", spec_of("counting", [_obj(shape, count=n)]), f"{word} {PLURALS[shape]}", False
    for color in COLORS:
        for shape in SHAPES:
            held = (color, shape) in HELD_OUT_PAIRS
            for art in ARTICLES:
                obj = _obj(shape, color)
                yield "colors", spec_of("colors", [obj]), _singular(art, obj), held
    for a in SHAPES:
        for b in SHAPES:
            if a == b:
                continue
            for art_a in ARTICLES:
                for art_b in ARTICLES:
                    phrase = f"{_singular(art_a, _obj(a))} and {_singular(art_b, _obj(b))}"
                    yield "two-object", spec_of("two-object", [_obj(a), _obj(b)]), phrase, False
                    for rel in RELATIONS:
                        held = (a, rel, b) in HELD_OUT_SCENES or (b, CONVERSE[rel], a) in HELD_OUT_SCENES
                        phrase = f"{_singular(art_a, _obj(a))} {rel} {_singular(art_b, _obj(b))}"
                        spec = spec_of("position", [_obj(a), _obj(b)], {"a": 0, "rel": rel, "b": 1})
                        yield "position", spec, phrase, held
    for a in SHAPES:
        for b in SHAPES:
            for ca in COLORS:
                for cb in COLORS:
                    if a == b or ca == cb:
                        continue
                    held = (ca, a) in HELD_OUT_PAIRS or (cb, b) in HELD_OUT_PAIRS
                    phrase = f"a {ca} {a} and a {cb} {b}"
                    yield "color-attr", spec_of("color-attr", [_obj(a, ca), _obj(b, cb)]), phrase, held


@functools.cache
def all_captions() -> dict[str, list[tuple[str, dict[str, Any], bool]]]:
    """Skill → [(caption, spec, held_out)], sorted by caption (deterministic, independent of set order)."""
    by_skill: dict[str, list[tuple[str, dict[str, Any], bool]]] = {s: [] for s in SKILLS}
    for skill, spec, phrase, held in _compositions():
        for template in TEMPLATES:
            by_skill[skill].append((template.format(phrase), spec, held))
    return {s: sorted(rows, key=lambda r: r[0]) for s, rows in by_skill.items()}


@functools.cache
def splits(seed: int = SPLIT_SEED) -> dict[str, dict[str, list[tuple[str, dict[str, Any], bool]]]]:
    """split → skill → [(caption, spec, held_out)]; disjoint caption sets.

    Test takes up to half its quota from held-out compositions (the rest of those are dropped,
    never trained on) and fills up with ordinary captions; val takes the next ones; train the rest.
    """
    out: dict[str, dict[str, list]] = {split: {} for split in SPLITS}
    for skill, rows in all_captions().items():
        rng = random.Random(f"{seed}:{skill}")
        held = [r for r in rows if r[2]]
        regular = [r for r in rows if not r[2]]
        rng.shuffle(held)
        rng.shuffle(regular)
        test = held[: TEST_PER_SKILL // 2]
        test += regular[: TEST_PER_SKILL - len(test)]
        rest = regular[TEST_PER_SKILL - len(held[: TEST_PER_SKILL // 2]):]
        out["test"][skill] = test
        out["val"][skill] = rest[:VAL_PER_SKILL]
        out["train"][skill] = rest[VAL_PER_SKILL:]
    return out


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Every word any caption uses, sorted (the tokenizer's vocabulary, after special tokens)."""
    words = {w for rows in all_captions().values() for caption, _, _ in rows for w in caption.split()}
    return tuple(sorted(words))


def words_of(text: str) -> list[str]:
    """How the world reads a prompt: lower case, split on white space, a final full stop ignored."""
    return text.lower().strip().rstrip(".").split()


def unknown_words(text: str) -> list[str]:
    known = set(vocabulary())
    return [w for w in dict.fromkeys(words_of(text)) if w not in known]
