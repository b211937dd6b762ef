"""Every method part that ships was trained on noise no test or val run uses (DESIGN §8, held out means held out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from imgbench.methods.img import method as img_method

from imgbench.components import build_method, build_model
from imgbench.provenance import read_part, seeds_in
from imgbench.worlds.shapes.model import SHIPPED_DPO
from imgbench.worlds.shapes.seeds import SPLIT_VERSION, TEST_SEEDS, VAL_SEEDS
from imgbench.worlds.shapes.train_cli import WEIGHTS_DIR

SHIPPED = {
    "shapes-llava": WEIGHTS_DIR / "llava" / "manifest.json",
    "shapes-llava-base": WEIGHTS_DIR / "llava-base" / "manifest.json",
    "img aligner (shapes)": Path(img_method.__file__).parent / "shapes" / "aligner.json",
    "shapes-dpo UNet": SHIPPED_DPO / "manifest.json",
    "shapes-ip2p editor": WEIGHTS_DIR / "ip2p" / "manifest.json",
    "shapes-detector": WEIGHTS_DIR / "detector" / "manifest.json",
}


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_part_records_its_seeds_and_none_is_a_test_or_val_seed(name):
    part = read_part(name, SHIPPED[name])
    assert part["seeds"] is not None, f"{SHIPPED[name]} records no data.seeds: retrain it (results/README.md)"
    assert seeds_in([*TEST_SEEDS, *VAL_SEEDS], part["seeds"]) == []


def test_shapes_llavas_name_the_protocol_they_follow():
    for name in ("shapes-llava", "shapes-llava-base", "shapes-detector"):
        assert read_part(name, SHIPPED[name])["split_version"] == SPLIT_VERSION


@pytest.mark.parametrize("guidance", ["finetuned-mllm", "mllm"])
def test_img_on_shapes_lists_only_parts_that_ship_with_a_seed_record(guidance):
    """What `run` stores and `compare` checks: the parts the shipped defaults actually load."""
    spec, _ = build_model("shapes", {})
    _, method = build_method("img", spec, {"guidance": guidance})
    parts = method.parts()
    assert [p["name"].split()[0] for p in parts] == ["aligner", "mllm"]
    assert all(p["seeds"] is not None and not seeds_in([*TEST_SEEDS, *VAL_SEEDS], p["seeds"]) for p in parts)
