"""Every published suite in ../shared/suites loads with its published size and category counts.

The expected numbers are the published ones (papers, upstream READMEs), written out here rather
than read from the task YAMLs, so a wrong YAML fails too.
"""

from __future__ import annotations

from collections import Counter

import pytest
from suites_support import shared_suites

from imgbench import catalog
from imgbench.task import load_task
from imgbench.util.text import slugify

PUBLISHED = {
    "drawbench": (200, {"colors": 25, "conflicting": 10, "counting": 19, "dall-e": 20, "descriptions": 20,
                        "gary-marcus-et-al": 10, "misspellings": 10, "positional": 20, "rare-words": 7,
                        "reddit": 38, "text": 21}),
    "partiprompts": (1632, {"animals": 314, "artifacts": 287, "world-knowledge": 214, "people": 177,
                            "outdoor-scenes": 131, "illustrations": 124, "vehicles": 104, "food-beverage": 74,
                            "arts": 66, "abstract": 51, "produce-plants": 50, "indoor-scenes": 40,
                            "fine-grained-detail": 312, "basic": 272, "simple-detail": 232, "style-format": 206,
                            "imagination": 150, "complex": 113, "writing-symbols": 91, "quantity": 90,
                            "perspective": 70, "linguistic-structures": 61, "properties-positioning": 35}),
    "geneval": (553, {"single-object": 80, "two-object": 99, "counting": 80, "colors": 94, "position": 100,
                      "color-attr": 100}),
    "t2i-compbench": (2400, {c: 300 for c in ("color", "shape", "texture", "spatial", "non-spatial", "complex",
                                                "3d-spatial", "numeracy")}),
    "t2i-compbench-v1": (1800, {c: 300 for c in ("color", "shape", "texture", "spatial", "non-spatial",
                                                   "complex")}),
    "hpdv2": (3200, {"anime": 800, "concept-art": 800, "paintings": 800, "photo": 800}),
    "genai-bench-527": (527, {"basic": 214, "advanced": 313, "attribute": 143, "scene": 109,
                              "spatial-relation": 104, "action-relation": 138, "part-relation": 34,
                              "counting": 97, "comparison": 51, "differentiation": 105, "negation": 101,
                              "universal": 47}),
    "tifa": (4081, {"coco": 2000, "partiprompt": 1420, "paintskill": 500, "drawbench": 161}),
    "dpg-bench": (1065, {}),
    "imagereward-bench": (100, {}),
    "drawbench-counting": (19, {"counting": 19}),
}


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch):
    monkeypatch.setenv("IMGBENCH_DATA_DIR", str(shared_suites()))
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name):
    spec = catalog.tasks().get(name).spec
    size, tags = PUBLISHED[name]
    task = load_task(spec)  # also verifies the pinned content checksum
    counts = Counter(t for p in task.prompts for t in p.tags)
    assert len(task.prompts) == size == spec.size
    assert {t: counts[t] for t in tags} == tags
    assert dict(spec.tags) == tags  # the YAML declares exactly the published numbers
    assert len({p.id for p in task.prompts}) == size
    assert task.origin.endswith("(data dir)")


def test_every_suite_in_the_shared_copy_has_a_task():
    folders = {p.name for p in shared_suites().iterdir() if p.is_dir()} - {"img_templates"}
    used = {s.spec.prompts.data_dir for s in catalog.tasks() if s.spec.prompts.content_sha256}
    assert folders <= used, f"suites without a pinned task: {folders - used}"


def test_ids_are_upstream_ids_or_indices_not_text_hashes():
    hpdv2 = load_task(catalog.tasks().get("hpdv2").spec)
    assert [p.id for p in hpdv2.prompts[:2]] == ["anime_0", "anime_1"]
    assert len({p.text for p in hpdv2.prompts}) < 3200  # texts repeat, ids do not
    tifa = load_task(catalog.tasks().get("tifa").spec)
    assert tifa.prompts[0].id == "coco_301091"
    dpg = load_task(catalog.tasks().get("dpg-bench").spec)
    assert "COCOval2014000000010363" in {p.id for p in dpg.prompts}


def test_metadata_kept_for_structured_scorers():
    geneval = load_task(catalog.tasks().get("geneval").spec)
    counting = next(p for p in geneval.prompts if "counting" in p.tags)
    assert counting.metadata["tag"] == "counting"
    assert counting.metadata["include"][0]["count"] >= 2
    assert any("exclude" in p.metadata for p in geneval.prompts)
    genai = load_task(catalog.tasks().get("genai-bench-527").spec)
    first = genai.prompts[0]
    assert first.id == "00001" and set(first.metadata["human_ratings"]) >= {"DALLE_3", "SDXL_Base"}
    assert first.metadata["human_ratings"]["DALLE_3"] == [5, 5, 5]
    parti = load_task(catalog.tasks().get("partiprompts").spec)
    giggle = next(p for p in parti.prompts if "G I G G L E" in p.text)
    assert giggle.text.startswith('"G I G G L E"')  # the TSV is unquoted: the quotes are part of the prompt


def test_slug_normalisation_of_drawbench_categories():
    assert slugify("Gary Marcus et al. ") == "gary-marcus-et-al"
    assert slugify("  Food & Beverage") == "food-beverage"
    task = load_task(catalog.tasks().get("drawbench").spec)
    assert "gary-marcus-et-al" in {t for p in task.prompts for t in p.tags}


def test_tags_subset_matches_after_slug_normalisation():
    from imgbench.util.text import parse_tags

    task = load_task(catalog.tasks().get("drawbench").spec)
    chosen = task.select(parse_tags(["Counting,Rare Words"]))
    assert len(chosen) == 19 + 7
