"""Scoring existing images: a run folder, or any folder laid out as <prompt_id>/<seed>.png.

Generation and scoring meet only through the folder contract, so images made outside imgbench
are scored exactly like imgbench's own.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from imgbench import catalog
from imgbench.api.records import Prompt
from imgbench.api.scorer import Scorer
from imgbench.distributed import Ranks
from imgbench.errors import UserError
from imgbench.manifest import check_writable_dir, ensure_writable_dir, environment_facts
from imgbench.metrics import write_metrics_if_complete
from imgbench.runner import build_scorers, score_items, scorer_key
from imgbench.store import RunStore, Shard, run_folder
from imgbench.task import Task, load_task, task_from_prompt_file
from imgbench.util.hashing import sha256_file, sha256_json
from imgbench.util.io import JsonlAppender

_SEED_FILE = re.compile(r"^(\d+)\.png$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OTHER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass
class ScoreOutcome:
    store: RunStore
    task: Task
    items: list[tuple[Prompt, int]]
    scored: dict[str, int]
    metrics: dict[str, Any] | None


def _task_of_run(manifest: dict[str, Any]) -> Task:
    source = Path(manifest.get("task_source", ""))
    name = manifest["task"]
    spec = catalog.tasks().get(name).spec if name in catalog.tasks() else task_from_prompt_file(source)
    task = load_task(spec)
    recorded = manifest["identity"]["task"]["content_sha256"]
    if task.checksum != recorded:
        raise UserError(f"the prompts of task {name!r} changed since this run was generated (checksum "
                        f"{task.checksum} now, {recorded} then); scoring would pair images with the wrong prompts.")
    return task


def _items_present(task: Task, store: RunStore) -> list[tuple[Prompt, int]]:
    generations = store.load_generations(verify=True)
    seeds = sorted({seed for _, seed in generations})
    return [(p, s) for p in task.prompts for s in seeds if (p.id, s) in generations]


def score_folder(store: RunStore, task: Task, scorers: list[Scorer], batch_size: int, command: str,
                 ranks: Ranks | None = None) -> ScoreOutcome:
    """Score the folder's trusted images with `scorers` (built, so checked, before anything is written).

    Under a launcher each rank scores the items its shard owns (imgbench.distributed).
    """
    ranks = ranks or Ranks()
    items = _items_present(task, store)
    if not items:
        raise UserError(f"{store.root} has no images to score for task {task.spec.name!r}.")
    store.append_invocation({**environment_facts(command), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "scorers": [s.name for s in scorers],
                             **({"ranks": ranks.record()} if ranks.launcher else {})})
    generations = store.load_generations(verify=False)
    own = [(p, s) for p, s in items if ranks.shard.owns((p.id, s))]
    scored = {s.name: score_items(store, s, own, ranks.shard, batch_size, generations) for s in scorers}
    keys = [[p.id, s] for p, s in items]
    item_set = {"seeds": sorted({s for _, s in items}), "n_items": len(items),
                "n_prompts": len({p.id for p, _ in items}), "items_sha256": sha256_json(keys)}
    primary = task.spec.primary_scorer if task.spec.primary_scorer in scored else scorers[0].name
    metrics = None
    if ranks.finish_together():
        metrics = write_metrics_if_complete(store, items, item_set, [scorer_key(s) for s in scorers], primary)
    store.remove_stale_temp_files()
    return ScoreOutcome(store=store, task=task, items=items, scored=scored, metrics=metrics)


def score_run(run_dir: str | Path, scorer_names: tuple[str, ...] | None, batch_size: int,
              command: str, scorer_args: dict[str, dict[str, Any]] | None = None,
              ranks: Ranks | None = None) -> ScoreOutcome:
    store = RunStore(run_dir)
    task = _task_of_run(store.read_manifest())
    scorers = build_scorers(scorer_names or task.spec.scorers, scorer_args)
    return score_folder(store, task, scorers, batch_size, command, ranks)


def _check_png(path: Path) -> None:
    """An image to score must be a PNG that decodes: anything else would fail mid-scoring, or be another format
    passed off under a .png name."""
    with open(path, "rb") as handle:
        signature = handle.read(len(_PNG_SIGNATURE))
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError):
        signature = b""
    if signature != _PNG_SIGNATURE:
        raise UserError(f"{path} is not a readable PNG image; --images takes PNG files <prompt_id>/<seed>.png "
                        f"(convert it, e.g. with PIL: Image.open(f).save('{path.stem}.png')).")


def _external_images(root: Path, task: Task) -> list[tuple[str, int, Path]]:
    """(prompt_id, seed, file) for each <prompt_id>/<seed>.png of the task; other image formats are refused."""
    known = {p.id for p in task.prompts}
    found: list[tuple[str, int, Path]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in known):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
                raise UserError(f"{file} is not a PNG; --images takes PNG files <prompt_id>/<seed>.png (convert "
                                f"it to {file.stem}.png).")
            match = _SEED_FILE.match(file.name)
            if match:
                _check_png(file)
                found.append((folder.name, int(match.group(1)), file.resolve()))
    if not found:
        raise UserError(f"no images found in {root} for task {task.spec.name!r}: expected files "
                        f"<prompt_id>/<seed>.png with prompt ids such as {', '.join(sorted(known)[:3])}.")
    return found


def index_external_images(images_dir: Path, task: Task, output: Path) -> RunStore:
    """Make a run folder whose generation records point at a user's images (<prompt_id>/<seed>.png)."""
    if not images_dir.is_dir():
        raise UserError(f"--images {images_dir} is not a folder; give a folder laid out as <prompt_id>/<seed>.png.")
    root = (images_dir / "images" if (images_dir / "images").is_dir() else images_dir).resolve()
    check_writable_dir(output)
    records = [{"prompt_id": pid, "seed": seed, "image": str(path), "sha256": sha256_file(path), "tags": []}
               for pid, seed, path in _external_images(root, task)]
    identity = {"task": task.identity(), "external_images": sha256_json([[r["prompt_id"], r["seed"], r["sha256"]]
                                                                          for r in records])}
    run_id = sha256_json(identity)[:12]
    store = RunStore(run_folder(output, task.spec.name, "external", root.name, run_id))
    store.check_identity(identity)
    ensure_writable_dir(store.root)
    store.create_manifest({"schema_version": 1, "run_id": run_id, "identity": identity, "task": task.spec.name,
                           "model": "external", "method": root.name, "task_source": str(task.spec.yaml_path),
                           "images_dir": str(root)})
    if not store.generations_file(Shard()).exists():
        with store.lock("generations"), JsonlAppender(store.generations_file(Shard())) as out:
            for record in records:
                out.append(record)
    return store
