"""A `base` run adopts the plain generations (IMG's initial images) another run of the same task and model made.

The reverse of IMG reusing a base run's images: base + IMG costs two generations per item in either order.
"""

from __future__ import annotations

from pathlib import Path

from test_img_method import img_args, inputs, records  # noqa: F401 - inputs is a fixture

from imgbench.cli import main as cli
from imgbench.testing import DummyModel

BASE = ["run", "--method", "base", "--model", "dummy", "--task", "tiny", "--seeds", "0-1", "--limit", "2",
        "--scorer", "dummy"]


def _count_generations(monkeypatch) -> list[int]:
    """Images the dummy model draws (one number per call), counted while the test runs."""
    drawn: list[int] = []
    original = DummyModel.generate

    def counting(self, requests, *args, **kwargs):
        drawn.append(len(requests))
        return original(self, requests, *args, **kwargs)

    monkeypatch.setattr(DummyModel, "generate", counting)
    return drawn


def test_base_after_img_adopts_its_initial_images(inputs, tmp_path, monkeypatch) -> None:  # noqa: F811
    out = tmp_path / "results"
    drawn = _count_generations(monkeypatch)
    assert cli(img_args(inputs, out)) == 0
    img_run, img_rows = records(out, "img")
    assert sum(drawn) == 8  # 4 items: initial + final each
    assert cli([*BASE, "--output", str(out)]) == 0
    assert sum(drawn) == 8  # base drew nothing
    base_run, base_rows = records(out, "base")
    initial = {(r["prompt_id"], r["seed"]): img_run / r["artefacts"]["initial"] for r in img_rows}
    for row in base_rows:
        adopted = row["info"]["adopted"]
        held = initial[(row["prompt_id"], row["seed"])]
        assert adopted["from_run"] == img_run.name and Path(adopted["path"]) == held
        assert (base_run / row["image"]).read_bytes() == held.read_bytes()

    fresh = tmp_path / "fresh"  # the same base run drawn from scratch: the very same bytes
    assert cli([*BASE, "--output", str(fresh)]) == 0
    fresh_run, fresh_rows = records(fresh, "base")
    assert fresh_run.name == base_run.name
    assert {r["sha256"] for r in fresh_rows} == {r["sha256"] for r in base_rows}
    assert all("info" not in r for r in fresh_rows)


def test_a_damaged_initial_image_is_drawn_again(inputs, tmp_path, monkeypatch) -> None:  # noqa: F811
    out = tmp_path / "results"
    assert cli(img_args(inputs, out)) == 0
    img_run, img_rows = records(out, "img")
    (img_run / img_rows[0]["artefacts"]["initial"]).write_bytes(b"not a png")
    drawn = _count_generations(monkeypatch)
    assert cli([*BASE, "--output", str(out)]) == 0
    assert sum(drawn) == 1  # only the damaged one is drawn
    _, base_rows = records(out, "base")
    assert sum("adopted" in r.get("info", {}) for r in base_rows) == 3


def test_no_adoption_across_model_settings(inputs, tmp_path, monkeypatch) -> None:  # noqa: F811
    """Another model setting (here its dtype) is another identity: nothing to adopt."""
    out = tmp_path / "results"
    assert cli(img_args(inputs, out)) == 0
    drawn = _count_generations(monkeypatch)
    assert cli([*BASE, "--output", str(out), "--dtype", "fp16"]) == 0
    assert sum(drawn) == 4
