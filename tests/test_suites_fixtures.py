"""Suites with no copy in ../shared/suites (Hugging Face only), tested with small fixtures in the real formats."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from suites_support import PROXY_VARS

from imgbench import catalog
from imgbench.runner import RunRequest, execute
from imgbench.task import load_task

PICKAPIC_FILE = "test_unique-00000-of-00001-ecef20a3469ae6e6.parquet"


def write_pickapic_parquet(path, captions):
    """A parquet file with the column schema of yuvalkirstain/pickapic_v2 (image bytes shortened)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(captions)
    table = pa.table({
        "are_different": pa.array([True] * n), "best_image_uid": pa.array([f"b{i}" for i in range(n)]),
        "caption": pa.array(captions), "created_at": pa.array([1683000000000] * n, pa.timestamp("ns")),
        "has_label": pa.array([True] * n), "image_0_uid": pa.array([f"u0-{i}" for i in range(n)]),
        "image_0_url": pa.array([f"https://example.invalid/{i}/0.png" for i in range(n)]),
        "image_1_uid": pa.array([f"u1-{i}" for i in range(n)]),
        "image_1_url": pa.array([f"https://example.invalid/{i}/1.png" for i in range(n)]),
        "jpg_0": pa.array([b"\xff\xd8jpeg0"] * n, pa.binary()), "jpg_1": pa.array([b"\xff\xd8jpeg1"] * n, pa.binary()),
        "label_0": pa.array([1.0] * n), "label_1": pa.array([0.0] * n),
        "model_0": pa.array(["sdxl"] * n), "model_1": pa.array(["sd-1.5"] * n),
        "ranking_id": pa.array(list(range(n)), pa.int64()), "user_id": pa.array([7] * n, pa.int64()),
        "num_example_per_prompt": pa.array([1] * n, pa.int64()), "__index_level_0__": pa.array(list(range(n)),
                                                                                              pa.int64()),
    })
    pq.write_table(table, path)


def write_genai_bench(folder, n=6):
    """genai_image.json (5-digit ids → prompt, per-model ratings) and genai_skills.json (skill → int ids)."""
    folder.mkdir(parents=True)
    images = {f"{i:05d}": {"id": f"{i:05d}", "prompt": f"prompt number {i}", "models": {"DALLE_3": [i % 5 + 1] * 3}}
              for i in range(1, n + 1)}
    skills = {"basic": [1, 2, 3], "advanced": [4, 5, 6], "attribute": [1, 2], "counting": [4], "negation": [5, 6]}
    (folder / "genai_image.json").write_text(json.dumps(images, indent=4))
    (folder / "genai_skills.json").write_text(json.dumps(skills, indent=4))


@pytest.fixture
def data(monkeypatch, tmp_path):
    for var in ("IMGBENCH_OFFLINE", "HF_HUB_OFFLINE", *PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMGBENCH_OFFLINE", "1")
    monkeypatch.setenv("IMGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IMGBENCH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_pickapic_parquet_captions_in_order(data):
    (data / "pickapic").mkdir()
    write_pickapic_parquet(data / "pickapic" / PICKAPIC_FILE, ["a cat", "  a dog on a sofa ", "a cat"])
    task = load_task(catalog.tasks().get("pickapic-test").spec)
    assert [(p.id, p.text) for p in task.prompts] == [("0", "a cat"), ("1", "a dog on a sofa"), ("2", "a cat")]


def test_genai_bench_1600_unpinned_records_the_checksum_seen(data, tmp_path):
    write_genai_bench(data / "genai_bench_1600")
    spec = catalog.tasks().get("genai-bench").spec
    assert spec.prompts.content_sha256 is None
    task = load_task(spec)
    counts = Counter(t for p in task.prompts for t in p.tags)
    assert counts == {"basic": 3, "advanced": 3, "attribute": 2, "counting": 1, "negation": 2}
    assert task.prompts[3].metadata["human_ratings"] == {"DALLE_3": [5, 5, 5]}
    outcome = execute(RunRequest(task="genai-bench", model="dummy", method="dummy", scorers=("dummy",), seeds=(0,),
                                 limit=2, output=tmp_path / "results"))
    manifest = json.loads(outcome.plan.store.run_json.read_text())
    assert manifest["identity"]["task"]["content_sha256"] == task.checksum


def test_hpdv2_3400_adds_hpdv2_drawbench_as_fifth_style(data):
    from suites_support import copy_suite

    folder = copy_suite("hpdv2", data)
    (folder / "drawbench.json").write_text(json.dumps([f"drawbench prompt {i}" for i in range(200)]))
    spec = catalog.tasks().get("hpdv2-3400").spec
    task = load_task(spec)
    assert len(task.prompts) == spec.size == 3400
    assert Counter(t for p in task.prompts for t in p.tags) == spec.tags
    assert task.prompts[-1].id == "drawbench_199"


@pytest.mark.parametrize(("image_ids", "skills"), [(["00001", "abc"], {"basic": [1]}),
                                                   (["00001"], {"basic": ["x1"]}),
                                                   (["00001"], {"basic": 1})])
def test_genai_bench_damaged_ids_are_a_user_error(data, image_ids, skills):
    from imgbench.errors import UserError

    folder = data / "genai_bench_1600"
    folder.mkdir()
    (folder / "genai_image.json").write_text(json.dumps({i: {"prompt": f"p {i}"} for i in image_ids}))
    (folder / "genai_skills.json").write_text(json.dumps(skills))
    with pytest.raises(UserError, match="genai_(image|skills).json"):
        load_task(catalog.tasks().get("genai-bench").spec)


def test_hpdv2_3400_still_verifies_the_four_pinned_style_files(data):
    from suites_support import copy_suite

    from imgbench.errors import UserError

    folder = copy_suite("hpdv2", data)
    (folder / "drawbench.json").write_text(json.dumps([f"drawbench prompt {i}" for i in range(200)]))
    anime = json.loads((folder / "anime.json").read_text())
    anime[5] += " (edited)"
    (folder / "anime.json").write_text(json.dumps(anime))
    with pytest.raises(UserError, match="four HPDv2 style files differ from the published lists"):
        load_task(catalog.tasks().get("hpdv2-3400").spec)


def test_unpinned_suite_with_the_wrong_size_is_flagged(data, caplog):
    write_genai_bench(data / "genai_bench_1600")
    spec = catalog.tasks().get("genai-bench").spec
    task = load_task(spec)
    assert f"published {spec.size}" in task.origin
    assert "the published suite has 1600" in caplog.text
