"""The exact checker: ≥ 99.5% right on renders, also under noise, blur and colour shifts; sound reasons."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from imgbench.api.records import Prompt
from imgbench.components import build_scorer
from imgbench.errors import UserError
from imgbench.worlds.shapes import grammar
from imgbench.worlds.shapes.checker import check
from imgbench.worlds.shapes.render import Placed, draw, render

N_IMAGES = 1000


def _perturb(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(0.5))
    pixels = np.asarray(image, dtype=float)
    if kind == "noise":
        pixels = pixels + rng.normal(0, 20, pixels.shape)
    elif kind == "shift":
        pixels = pixels + rng.uniform(-40, 40, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


@pytest.mark.parametrize("kind", ["clean", "noise", "blur", "shift"])
def test_checker_accepts_renders(kind):
    rows = [(c, s) for rows in grammar.all_captions().values() for c, s, _ in rows]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(rows), N_IMAGES, replace=False)
    correct = 0
    for k, index in enumerate(picks):
        spec = rows[index][1]
        correct += check(_perturb(render(spec, k), kind, np.random.default_rng(k)), spec)["correct"]
    assert correct / N_IMAGES >= 0.995


def _spec(skill, objects, relation=None):
    return grammar.spec_of(skill, [{"shape": s, "color": c, "count": n} for s, c, n in objects], relation)


RED_CIRCLE_BLUE_SQUARE = [Placed("red", "circle", 10, 3, 9), Placed("blue", "square", 10, 20, 9)]


@pytest.mark.parametrize(("spec", "reason"), [
    (_spec("color-attr", [("circle", "red", 1), ("square", "blue", 1)]), "ok"),
    (_spec("color-attr", [("circle", "blue", 1), ("square", "red", 1)]), "wrong attribute binding"),
    (_spec("colors", [("circle", "green", 1)]), "extra object"),
    (_spec("two-object", [("circle", None, 1), ("triangle", None, 1)]), "wrong shape"),
    (_spec("color-attr", [("circle", "yellow", 1), ("square", "blue", 1)]), "wrong color"),
    (_spec("counting", [("circle", None, 3)]), "wrong count (2 objects, want 3)"),
    (_spec("position", [("circle", None, 1), ("square", None, 1)], {"a": 0, "rel": "left of", "b": 1}), "ok"),
    (_spec("position", [("circle", None, 1), ("square", None, 1)], {"a": 0, "rel": "right of", "b": 1}),
     "wrong position"),
    (_spec("position", [("circle", None, 1), ("square", None, 1)], {"a": 0, "rel": "above", "b": 1}),
     "wrong position"),
])
def test_checker_reasons(spec, reason):
    verdict = check(Image.fromarray(draw(RED_CIRCLE_BLUE_SQUARE)), spec)
    assert verdict["reason"] == reason
    assert verdict["correct"] == (reason == "ok")


def test_missing_object_and_other_colours():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[4:12, 4:12] = (200, 0, 200)  # purple: no palette colour, an unrecognised object
    spec = _spec("single-object", [("square", None, 1)])
    assert check(Image.fromarray(image), spec)["reason"] == "wrong shape"
    assert check(Image.fromarray(np.zeros_like(image)), spec)["reason"] == "missing object"


def test_scorer_reads_spec_from_metadata_and_scales_images():
    scorer = build_scorer("shapes-exact")
    spec = _spec("colors", [("triangle", "green", 1)])
    prompt = Prompt(id="0", text="a green triangle", tags=("colors",), metadata={"spec": spec})
    big = render(spec, 3).resize((256, 256), Image.Resampling.NEAREST)
    (result,) = scorer.score([big], [prompt])
    assert result.value == 1.0 and result.details["skill"] == "colors" and result.details["reason"] == "ok"
    with pytest.raises(UserError, match="no metadata"):
        scorer.score([big], [Prompt(id="1", text="a green triangle")])


@pytest.mark.parametrize("size", [6, 7, 9, 12, 20])
def test_corner_moment_separates_discs_from_squares_at_any_size(size):
    from imgbench.worlds.shapes.checker import SQUARE_MOMENT, box_template, corner_moment

    disc, square = (corner_moment(box_template(shape, size, size).astype(float)) for shape in ("circle", "square"))
    assert disc < SQUARE_MOMENT < square
    assert abs(square - 1) < 1e-9 and abs(disc - 2 / 3) < 0.13  # pixelised discs: 0.55-0.75


def test_coverage_counts_dim_edges_but_never_a_neighbour():
    from imgbench.worlds.shapes.checker import coverage_of, label_colors

    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[4:10, 4:10] = (255, 0, 0)
    pixels[4:10, 10] = (110, 0, 0)  # a dim red edge: darker than the mask's threshold
    pixels[4:10, 3] = (255, 255, 0)  # a yellow neighbour: full red channel, but another object's colour
    labels = label_colors(pixels)
    full = labels == 1
    assert full.sum() == 36
    cover = coverage_of(pixels, labels, full, "red")
    assert cover.shape == (8, 8)  # the mask's box grown by a pixel, clipped to what it reaches
    assert cover[1:7, 7].max() == pytest.approx(110 / 255)  # column 10
    assert cover[:, 0].max() == 0  # column 3: the yellow neighbour stays out
    assert cover[1:7, 1:7].min() == 1
