"""Every bad input of tests/fixtures/hardening/bad_inputs.yaml (issue #24): exit 2, a one-line message naming the
fix, no traceback, nothing written — the results folder holding the reference runs hashes the same after."""

from __future__ import annotations

import shutil

import pytest
from hardening_support import WORLDS, cli, load_fixture, tree_digest

from imgbench.util.text import parse_seeds

ENTRIES = load_fixture("bad_inputs.yaml")
CASES = [(world, entry) for entry in ENTRIES
         for world in (entry.get("worlds", list(WORLDS)) if "{world}" in entry["argv"] else ["dummy"])]


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.fixture(scope="module")
def results(hardening_reference, tmp_path_factory):
    """One results folder with the undamaged reference run of each world (copies: the session's stay pristine)."""
    output = tmp_path_factory.mktemp("bad-inputs") / "results"
    for world in WORLDS:
        shutil.copytree(hardening_reference(world), output, dirs_exist_ok=True)
    return output


def test_the_fixture_has_at_least_100_inputs_and_5_per_class():
    classes: dict[str, int] = {}
    for entry in ENTRIES:
        classes[entry["class"]] = classes.get(entry["class"], 0) + 1
        assert entry["exit"] == 2 and entry["message"]
    assert len(ENTRIES) >= 100 and min(classes.values()) >= 5, classes


def _expand(argv: list[str], world: str, places: dict[str, str]) -> list[str]:
    expanded: list[str] = []
    for arg in argv:
        if arg == "{world}":
            expanded += WORLDS[world]
        else:
            for name, value in places.items():
                arg = arg.replace("{" + name + "}", value)
            expanded.append(arg)
    return expanded


@pytest.mark.parametrize(("world", "entry"), CASES,
                         ids=[f"{w}-{i}-{e['class']}" for i, (w, e) in enumerate(CASES)])
def test_bad_input_exits_2_with_its_message_and_writes_nothing(world, entry, results, tmp_path, capsys):
    if entry.get("requires") == "no-gpu" and not _no_gpu():
        pytest.skip("a GPU is visible here")
    scratch, fresh = tmp_path / "scratch", tmp_path / "fresh-results"
    scratch.mkdir()
    (scratch / "file").write_text("a plain file\n")
    for name, content in (entry.get("files") or {}).items():
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    places = {"out": str(results), "fresh": str(fresh), "tmp": str(scratch), "file": str(scratch / "file"),
              "run": str(run_dir_of(results, world))}
    before = tree_digest(results)
    scratch_before = tree_digest(scratch)
    status, _, err = cli(capsys, *_expand(entry["argv"], world, places))
    assert "Traceback" not in err and "internal error" not in err, err
    assert status == entry["exit"], err
    assert any(entry["message"] in line for line in err.splitlines()), err
    assert tree_digest(results) == before, "a refused command changed a run folder"
    assert tree_digest(scratch) == scratch_before, "a refused command wrote a file"
    assert not fresh.exists(), "a refused command created its output folder"


def run_dir_of(results, world: str):
    task = "tiny" if world == "dummy" else "shapes"
    return next(p for p in (results / "runs" / task).glob("*/*/*") if (p / "run.json").exists())


@pytest.mark.parametrize("text", ["0--3", "3-1", "a-b", "-3", "1.5"])
def test_seed_suggestions_parse(text, capsys):
    """A message that suggests a --seeds value suggests one that works."""
    import re

    from imgbench.errors import UserError

    with pytest.raises(UserError) as info:
        parse_seeds(text)
    suggestions = re.findall(r"'([^']*)'", str(info.value))[1:]
    assert suggestions
    for suggestion in suggestions:
        if suggestion != text and not suggestion.startswith(text):
            assert parse_seeds(suggestion)
