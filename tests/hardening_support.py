"""Shared parts of the hardening tests (issue #24): the two worlds, their reference runs, a counting CLI, and the
damage operations named in tests/fixtures/hardening/damage_kinds.yaml.

Each damage operation edits a copy of a finished run folder and returns the items it touched, so the test can
check that exactly those (and only those) are regenerated or rescored, each exactly once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures" / "hardening"
Item = tuple[str, int]

#: The dummy world runs in milliseconds. The shapes world is the real CPU model at 2 sampler steps instead of
#: 25: the store does not care how an image was sampled, and 25 steps cost ~12x the time per regeneration.
WORLDS = {
    "dummy": ["--model", "dummy", "--method", "dummy", "--task", "tiny", "--scorer", "dummy"],
    "shapes": ["--task", "shapes", "--limit", "2", "--seeds", "0-1", "--model-arg", "steps=2"],
}


def load_fixture(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def run_dir(output: Path) -> Path:
    (folder,) = [p for p in output.glob("runs/*/*/*/*") if (p / "run.json").exists()]
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root (relative path → sha256 of its bytes): 'nothing changed' made checkable."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# the CLI, counted ----------------------------------------------------------------------------------------------
@dataclass
class Calls:
    """(prompt_id, seed) of every image generated and every image scored (per scorer) since the last reset."""

    generated: Counter = field(default_factory=Counter)
    scored: dict[str, Counter] = field(default_factory=dict)

    def reset(self) -> None:
        self.generated.clear()
        self.scored.clear()


def counting_cli(monkeypatch, calls: Calls) -> None:
    """Count generations and score rows per item; keep built models and scorers between in-process invocations.

    Reusing a model or scorer instance (same name and arguments) only skips reloading its weights; everything
    the store does runs as in a fresh process.
    """
    import imgbench.runner as runner

    models: dict[str, Any] = {}
    scorers: dict[str, Any] = {}
    build_model, build_method, build_scorer = runner.build_model, runner.build_method, runner.build_scorer
    score_row = runner.score_row

    def cached_model(name: str, *args: Any) -> Any:
        key = json.dumps([name, *args], sort_keys=True, default=str)
        if key not in models:
            models[key] = build_model(name, *args)
        return models[key]

    def counted_method(*args: Any) -> Any:
        spec, method = build_method(*args)
        generate = method.generate

        def generate_counted(requests, model):
            calls.generated.update((r.prompt.id, r.seed) for r in requests)
            return generate(requests, model)

        method.generate = generate_counted
        return spec, method

    def cached_scorer(name: str, scorer_args: Any = None) -> Any:
        key = json.dumps([name, scorer_args], sort_keys=True)
        if key not in scorers:
            scorers[key] = build_scorer(name, scorer_args)
        return scorers[key]

    def counted_row(scorer_key: str, item: Item, *args: Any) -> Any:
        calls.scored.setdefault(scorer_key.split("@")[0], Counter())[item] += 1
        return score_row(scorer_key, item, *args)

    monkeypatch.setattr(runner, "build_model", cached_model)
    monkeypatch.setattr(runner, "build_method", counted_method)
    monkeypatch.setattr(runner, "build_scorer", cached_scorer)
    monkeypatch.setattr(runner, "score_row", counted_row)


def cli(capsys, *args: Any) -> tuple[int, str, str]:
    """`imgbench ARGS` in-process: (exit status, stdout, stderr); argparse's own exits count as statuses."""
    from imgbench.cli import main

    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def dead_pid() -> int:
    """The id of a process that has exited (for a temp file 'left by a killed process')."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# run folder content ----------------------------------------------------------------------------------------------
def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in lines(path)]


def key_of(record: dict[str, Any]) -> Item:
    return record["prompt_id"], record["seed"]


def items_of(run: Path) -> list[Item]:
    return sorted(key_of(r) for r in records(run / "generations.jsonl"))


def first_scores_file(run: Path) -> Path:
    """The rows of the run's primary scorer (the first in the task's list), the file score damage edits."""
    primary = json.loads((run / "metrics.json").read_text())["primary_scorer"]
    (path,) = (run / "scores").glob(f"{primary}@*.jsonl")
    return path


def snapshot(run: Path) -> dict[str, Any]:
    """What must equal the undamaged run after healing: images, artefacts, records without timing, rows, metrics."""
    generations = {}
    for path in sorted(run.glob("generations*.jsonl")):
        for record in records(path):
            assert key_of(record) not in generations, f"two records for {key_of(record)}"
            generations[key_of(record)] = {k: v for k, v in record.items() if k != "seconds"}
    rows: dict[str, dict[Item, dict]] = {}
    for path in sorted((run / "scores").glob("*.jsonl")):
        found = rows.setdefault(path.name, {})
        for row in records(path):
            assert key_of(row) not in found, f"two rows for {key_of(row)} in {path.name}"
            found[key_of(row)] = row
    files = {k: v for k, v in tree_digest(run).items()
             if k.startswith(("images/", "artefacts/", "scores/")) and k.endswith((".png", ".json"))}
    return {"generations": generations, "rows": rows, "files": files,
            "metrics": (run / "metrics.json").read_text(),
            "identity": json.loads((run / "run.json").read_text())["identity"],
            "temp_files": sorted(str(p) for p in run.rglob("*.tmp"))}


# damage operations ------------------------------------------------------------------------------------------------
@dataclass
class Affected:
    """Items a damage touched: to be regenerated, and to be rescored by the primary scorer."""

    regenerate: set[Item] = field(default_factory=set)
    rescore: set[Item] = field(default_factory=set)


def _family(run: Path, file: str) -> tuple[Path, str]:
    if file == "generations":
        return run / "generations.jsonl", "regenerate"
    return first_scores_file(run), "rescore"


def _affected(kind: str, items: set[Item]) -> Affected:
    return Affected(**{kind: set(items)})


def _write_lines(path: Path, raw: list[bytes], final_newline: bool = True) -> None:
    path.write_bytes(b"\n".join(raw) + (b"\n" if final_newline and raw else b""))


def _line_of(path: Path, item: Item) -> int:
    return next(i for i, raw in enumerate(lines(path)) if key_of(json.loads(raw)) == item)


def duplicate_record(run: Path, world_items: list[Item], file: str, bad_first: bool = False) -> Affected:
    path, kind = _family(run, file)
    item = world_items[0]
    raw = lines(path)
    index = _line_of(path, item)
    copy = json.loads(raw[index])
    if bad_first:  # an older, wrong record for the item, listed before the good one
        copy["sha256" if file == "generations" else "image_sha256"] = "0" * 64
        raw.insert(index, json.dumps(copy).encode())
    else:
        raw.append(raw[index])
    _write_lines(path, raw)
    return _affected(kind, {item})


def edit_record(run: Path, world_items: list[Item], file: str, set: dict[str, Any] | None = None,
                remove: str | None = None, copy_from_item: list[str] | None = None) -> Affected:
    """Edit one item's record: set fields, remove one, or copy fields from another item's record."""
    path, kind = _family(run, file)
    raw = lines(path)
    index = _line_of(path, world_items[0])
    record = json.loads(raw[index])
    record.update(set or {})
    if remove:
        del record[remove]
    if copy_from_item:
        other = json.loads(raw[_line_of(path, world_items[1])])
        record.update({k: other[k] for k in copy_from_item})
    raw[index] = json.dumps(record).encode()
    _write_lines(path, raw)
    touched = {world_items[0], world_items[1]} if copy_from_item and "seed" in copy_from_item else {world_items[0]}
    return _affected(kind, touched)


def insert_garbage(run: Path, world_items: list[Item], file: str) -> Affected:
    path, kind = _family(run, file)
    raw = lines(path)
    raw.insert(len(raw) // 2, b'{"prompt_id": "0", "seed": ')
    _write_lines(path, raw)
    return Affected()


def cut(run: Path, world_items: list[Item], file: str, at: str) -> Affected:
    """Truncate the file in the middle of its last line, or of its middle line (losing every line after it)."""
    path, kind = _family(run, file)
    raw = lines(path)
    index = len(raw) - 1 if at == "last" else len(raw) // 2
    lost = {key_of(json.loads(r)) for r in raw[index:]}
    offset = sum(len(r) + 1 for r in raw[:index]) + len(raw[index]) // 2
    path.write_bytes(path.read_bytes()[:offset])
    return _affected(kind, lost)


def strip_final_newline(run: Path, world_items: list[Item], file: str) -> Affected:
    path, _ = _family(run, file)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    return Affected()


def delete_file(run: Path, world_items: list[Item], file: str) -> Affected:
    path, kind = _family(run, file)
    everything = {key_of(r) for r in records(path)}
    path.unlink()
    return _affected(kind, everything)


def damage_png(run: Path, world_items: list[Item], how: str) -> Affected:
    item, other = world_items[0], world_items[1]
    image = run / "images" / item[0] / f"{item[1]}.png"
    if how == "delete":
        image.unlink()
    elif how == "empty":
        image.write_bytes(b"")
    elif how == "truncate":
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    elif how == "garbage":
        image.write_bytes(b"not a png at all")
    elif how == "swap":
        second = run / "images" / other[0] / f"{other[1]}.png"
        first_bytes = image.read_bytes()
        image.write_bytes(second.read_bytes())
        second.write_bytes(first_bytes)
        return Affected(regenerate={item, other})
    return Affected(regenerate={item})


def delete_artefact(run: Path, world_items: list[Item]) -> Affected:
    item = world_items[0]
    for path in (run / "artefacts" / item[0] / str(item[1])).iterdir():
        path.unlink()
    return Affected(regenerate={item})


def _flip_direction(meta: dict[str, Any]) -> None:
    meta["higher_is_better"] = not meta["higher_is_better"]
    meta["identity"]["version"] = 99


def _edit_mean(metrics: dict[str, Any]) -> None:
    next(iter(metrics["scorers"].values()))["overall"]["mean"] = 0.123456


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "scorer-direction": _flip_direction,
    "identity": lambda manifest: manifest["identity"].update(cache_epoch=0),
    "run-id": lambda manifest: manifest.update(run_id="0" * 12),
    "mean": _edit_mean,
}


def damage_json(run: Path, world_items: list[Item], file: str, how: str) -> Affected:
    """Delete, truncate, replace by a list, or edit (EDITS) run.json, metrics.json or the scorer identity file."""
    path = first_scores_file(run).with_suffix(".json") if file == "scorer-identity" else run / file
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_text(path.read_text()[:40])
    elif how == "list":
        path.write_text("[]\n")
    else:
        content = json.loads(path.read_text())
        EDITS[how](content)
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return Affected()


def stale_temp_file(run: Path, world_items: list[Item]) -> Affected:
    from imgbench.util.io import HOST

    item = world_items[0]
    (run / "images" / item[0] / f".{item[1]}.png.{HOST}-{dead_pid()}.k1ll3d.tmp").write_bytes(b"half a png")
    return Affected()


def torn_invocation(run: Path, world_items: list[Item]) -> Affected:
    path = run / "invocations.jsonl"
    path.write_bytes(path.read_bytes() + b'{"command": "imgbench run --task')
    return Affected()


DAMAGES: dict[str, Callable[..., Affected]] = {f.__name__: f for f in (
    duplicate_record, edit_record, insert_garbage, cut, strip_final_newline, delete_file, damage_png,
    delete_artefact, damage_json, stale_temp_file, torn_invocation)}


def make_reference(output: Path, world: str, capsys) -> Path:
    """One undamaged run of the world (a fresh process's work, made in-process)."""
    status, _, err = cli(capsys, "run", *WORLDS[world], "--output", output)
    assert status == 0, err
    return run_dir(output)


def copy_output(reference_output: Path, target: Path) -> Path:
    shutil.copytree(reference_output, target, symlinks=True)
    return run_dir(target)
