"""Every damage kind of issue #24 on a finished run folder, on the dummy and the shapes world: detected, each
touched item redone exactly once, and the result identical to the undamaged run (or, where run.json cannot be
trusted, refused without a write and rebuilt identically once the folder is moved away)."""

from __future__ import annotations

import logging
import shutil

import pytest
from hardening_support import (
    DAMAGES,
    WORLDS,
    Calls,
    cli,
    copy_output,
    counting_cli,
    first_scores_file,
    items_of,
    load_fixture,
    run_dir,
    snapshot,
    tree_digest,
)

KINDS = load_fixture("damage_kinds.yaml")
CASES = [(world, kind) for world in WORLDS for kind in KINDS if world in kind.get("worlds", list(WORLDS))]


def test_the_fixture_lists_every_kind_once():
    names = [kind["name"] for kind in KINDS]
    assert len(names) == len(set(names)) >= 30
    assert all(kind["damage"] in DAMAGES and kind["outcome"] in ("healed", "refused") and kind["detected"]
               for kind in KINDS)


@pytest.mark.parametrize(("world", "kind"), CASES, ids=[f"{w}-{k['name']}" for w, k in CASES])
def test_damage_is_detected_and_healed(world, kind, hardening_reference, tmp_path, capsys, caplog, monkeypatch):
    reference = run_dir(hardening_reference(world))
    expected = snapshot(reference)
    output = tmp_path / "results"
    run = copy_output(hardening_reference(world), output)
    items = items_of(run)
    primary = first_scores_file(run).name.split("@")[0]
    scorers = {p.name.split("@")[0] for p in (run / "scores").glob("*.jsonl")}
    affected = DAMAGES[kind["damage"]](run, items, **kind.get("args", {}))
    calls = Calls()
    counting_cli(monkeypatch, calls)
    caplog.set_level(logging.WARNING, logger="imgbench")
    args = ("run", *WORLDS[world], "--output", output)

    status, _, err = cli(capsys, "show", "run", run)  # a damaged folder is shown or named, never a crash
    assert status in (0, 2) and "internal error" not in err and "Traceback" not in err
    if kind["outcome"] == "refused":
        assert status == 2 and kind["detected"] in err
        before = tree_digest(output)
        status, _, err = cli(capsys, *args)
        assert status == 2 and kind["detected"] in err and "move the folder out" in err, err
        assert tree_digest(output) == before, "a refused run must write nothing"
        assert not calls.generated and not calls.scored
        shutil.move(run, tmp_path / "moved-away")  # the fix the message names
        regenerate, rescore = set(items), {name: set(items) for name in scorers}
    else:
        regenerate, rescore = affected.regenerate, {primary: affected.rescore}

    caplog.clear()
    status, _, err = cli(capsys, *args)
    assert status == 0, err
    if kind["outcome"] == "healed":
        assert kind["detected"] in caplog.text, caplog.text
    assert "--shard" not in caplog.text + err, "resuming never calls for another shard"
    assert dict(calls.generated) == dict.fromkeys(regenerate, 1), "each touched item regenerated exactly once"
    assert {name: dict(c) for name, c in calls.scored.items() if c} == \
        {name: dict.fromkeys(keys, 1) for name, keys in rescore.items() if keys}, "each touched row rescored once"
    healed = snapshot(run_dir(output))
    for part in ("files", "generations", "rows", "metrics", "identity", "temp_files"):
        assert healed[part] == expected[part], part
    status, _, err = cli(capsys, "show", "run", run_dir(output))
    assert status == 0 and "damaged" not in err
