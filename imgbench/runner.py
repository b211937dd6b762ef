"""Generate → score → aggregate, resumable and sharded (DESIGN §1, §5).

A run is identified by the hash of everything that changes its pixels (task content, model
identity, method identity, image size, cache epoch). Seeds, --limit, --tags and --shard only
choose which (prompt, seed) items to produce, so they extend the same run folder. A rerun
generates only items without a valid record and scores only items without a valid row.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from imgbench import CACHE_EPOCH, catalog, presets
from imgbench.api.method import Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest, Prompt
from imgbench.api.scorer import Scorer
from imgbench.api.specs import ComponentSpec
from imgbench.audit import audit_generations, audit_scores, heal, row_checksum
from imgbench.components import build_method, build_model, build_scorer
from imgbench.distributed import Ranks
from imgbench.errors import MissingFiles, UserError, collect_missing, missing_together
from imgbench.manifest import check_writable_dir, ensure_writable_dir, environment_facts
from imgbench.metrics import write_metrics_if_complete
from imgbench.progress import progress_bar
from imgbench.provenance import leaks
from imgbench.store import ItemKey, RunStore, Shard, encode_value, run_folder
from imgbench.task import Task, load_task, resolve_task
from imgbench.util.hashing import sha256_bytes, sha256_json
from imgbench.util.text import MAX_ITEMS

logger = logging.getLogger(__name__)


@dataclass
class RunRequest:
    """One invocation of `imgbench run` / `generate`, as the user gave it."""

    task: str | None = None
    prompts_file: str | None = None
    text_column: str = "text"
    model: str | None = None
    method: str = "base"
    method_args: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    preset: str | None = None
    """A named sampling protocol (imgbench.presets): model arguments under --model-arg; recorded, not hashed."""
    seeds: tuple[int, ...] | None = None
    limit: int | None = None
    offset: int = 0
    tags: tuple[str, ...] = ()
    shard: Shard = field(default_factory=Shard)
    ranks: Ranks = field(default_factory=Ranks)
    """The launcher's ranks (imgbench.distributed); under one, `shard` is this rank's."""
    batch_size: int | None = None
    """Images per model/scorer call; None means the model's preferred_batch_size."""
    device: str | None = None
    dtype: str | None = None
    output: Path = Path("results")
    scorers: tuple[str, ...] | None = None
    scorer_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    command: str = ""


@dataclass
class RunPlan:
    """A resolved run: components built, identity hashed, items chosen. Nothing generated yet."""

    request: RunRequest
    task: Task
    prompts: list[Prompt]
    seeds: tuple[int, ...]
    model_spec: ComponentSpec
    model: Model
    method_spec: ComponentSpec
    method: Method
    identity: dict[str, Any]
    run_id: str
    store: RunStore
    batch_size: int
    """--batch-size, else the model's preferred batch size (never part of the run id)."""

    @property
    def items(self) -> list[tuple[Prompt, int]]:
        """Every requested (prompt, seed), in task order then seed order (all shards)."""
        return [(p, s) for p in self.prompts for s in self.seeds]

    @property
    def own_items(self) -> list[tuple[Prompt, int]]:
        return [(p, s) for p, s in self.items if self.request.shard.owns((p.id, s))]


def plan_run(request: RunRequest) -> RunPlan:
    """Resolve and check everything a run needs; nothing is written (a refused request leaves no trace)."""
    if request.batch_size is not None and request.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {request.batch_size}.")
    check_writable_dir(request.output)
    spec = resolve_task(request.task, request.prompts_file, text_column=request.text_column)
    missing: list[MissingFiles] = []
    task = collect_missing(missing, lambda: load_task(spec))
    model_name = request.model or spec.default_model
    if not model_name:
        raise UserError(f"task {spec.name!r} names no default_model; choose one with --model "
                        f"(see `imgbench ls models`).")
    model_args = presets.apply(request.preset, model_name, request.model_args)
    built = collect_missing(missing, lambda: build_model(model_name, model_args, request.device, request.dtype,
                                                         request.model_path))
    model_spec = built[0] if built else catalog.models().get(model_name).spec
    method = collect_missing(missing, lambda: build_method(request.method, model_spec, request.method_args))
    if missing or task is None or built is None or method is None:
        raise missing_together(missing)
    model, (method_spec, method) = built[1], method
    prompts = task.select(request.tags, request.limit, request.offset)
    seeds = request.seeds or spec.seeds
    if len(prompts) * len(seeds) > MAX_ITEMS:
        raise UserError(f"{len(prompts):,} prompts x {len(seeds):,} seeds is {len(prompts) * len(seeds):,} items; at "
                        f"most {MAX_ITEMS:,} per invocation. Use fewer --seeds or --limit / --tags, and run the rest "
                        f"in further invocations (they extend the same run).")
    identity = {
        "task": task.identity(),
        "model": {"name": model_spec.name, **model.identity()},
        "method": method.identity(),
        "size": [spec.height, spec.width],
        "cache_epoch": CACHE_EPOCH,
    }
    run_id = sha256_json(identity)[:12]
    store = RunStore(run_folder(request.output, spec.name, model_spec.name, method_spec.name, run_id))
    return RunPlan(request=request, task=task, prompts=prompts, seeds=seeds, model_spec=model_spec, model=model,
                   method_spec=method_spec, method=method, identity=identity, run_id=run_id, store=store,
                   batch_size=request.batch_size or model.preferred_batch_size)


def open_run(plan: RunPlan, scorer_keys: Sequence[str] = ()) -> None:
    """Create the folder and its run.json (once, by whichever process gets there first); log the invocation.

    The first write of an invocation: everything that can refuse the request has run before it. The scorers
    are logged so that `imgbench merge` writes the metrics the shards' own command would have written.
    """
    ensure_writable_dir(plan.request.output)
    ensure_writable_dir(plan.store.root)
    plan.store.create_manifest({
        "schema_version": 1,
        "run_id": plan.run_id,
        "identity": plan.identity,
        "task": plan.task.spec.name,
        "model": plan.model_spec.name,
        "method": plan.method_spec.name,
        "task_source": str(plan.task.spec.yaml_path),
        **({"preset": plan.request.preset} if plan.request.preset else {}),
        # what the model's and the method's trained parts saw; follows from the identity's digests
        "parts": plan.model.parts() + plan.method.parts(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "created_by": environment_facts(plan.request.command),
    })
    plan.store.append_invocation({
        **environment_facts(plan.request.command),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "item_set": item_set(plan),
        "task_data": plan.task.origin,
        "shard": f"{plan.request.shard.index}/{plan.request.shard.count}",
        "batch_size": plan.batch_size,
        **({"scorers": list(scorer_keys)} if scorer_keys else {}),
        **({"ranks": plan.request.ranks.record()} if plan.request.ranks.launcher else {}),
        **({"preset": plan.request.preset} if plan.request.preset else {}),
    })


def item_set(plan: RunPlan) -> dict[str, Any]:
    """The requested items, named so metrics.json says exactly what it was computed over."""
    keys = [[p.id, s] for p, s in plan.items]
    return {"seeds": list(plan.seeds), "tags": list(plan.request.tags), "limit": plan.request.limit,
            **({"offset": plan.request.offset} if plan.request.offset else {}),
            "n_prompts": len(plan.prompts), "n_items": len(keys), "items_sha256": sha256_json(keys)}


def _batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def generate_phase(plan: RunPlan) -> int:
    """Heal this shard's record files, then generate its missing items; return how many were made."""
    store, shard = plan.store, plan.request.shard
    own = store.generations_file(shard)
    with store.lock(store.lock_name(own)):
        found, blocked = heal(store, lambda: audit_generations(store, verify=True), store.lock_name(own))
        missing = [(p, s) for p, s in plan.own_items if (p.id, s) not in found.valid and (p.id, s) not in blocked]
        if not missing:
            return 0
        orphans = [(p.id, s) for p, s in missing if (store.root / store.image_relpath((p.id, s))).exists()]
        if orphans:
            logger.warning("%s: %d image(s) on disk without a trusted record (a damaged or lost record file, or a "
                           "write interrupted between image and record), e.g. %s; regenerated", store.root,
                           len(orphans), store.image_relpath(orphans[0]))
        plan.method.prepare(plan)
        height, width = plan.task.spec.height, plan.task.spec.width
        with store.appender(own) as out, \
                progress_bar(f"generate {plan.method_spec.name} on {plan.model_spec.name}", len(missing)) as advance:
            for batch in _batches(missing, plan.batch_size):
                requests = [GenerationRequest(prompt=p, seed=s, height=height, width=width) for p, s in batch]
                start = time.perf_counter()
                generations = plan.method.generate(requests, plan.model)
                seconds = (time.perf_counter() - start) / len(batch)
                if len(generations) != len(batch):
                    raise RuntimeError(f"method {plan.method_spec.name} returned {len(generations)} images for "
                                       f"{len(batch)} requests")
                for (prompt, seed), generation in zip(batch, generations, strict=True):
                    key: ItemKey = (prompt.id, seed)
                    relpath, digest = store.save_image(key, generation.image)
                    record = {"prompt_id": prompt.id, "seed": seed, "tags": list(prompt.tags), "image": relpath,
                              "sha256": digest, "seconds": round(seconds, 6), "batch_size": plan.batch_size}
                    if generation.artefacts:
                        record["artefacts"] = store.save_artefacts(key, generation.artefacts)
                    if generation.info:
                        record["info"] = generation.info
                    out.append(record)
                    advance(1)
    return len(missing)


def scorer_key(scorer: Scorer) -> str:
    return f"{scorer.name}@{sha256_json(scorer.identity())[:12]}"


def _verified_image(store: RunStore, record: dict[str, Any]) -> Image.Image | None:
    """The item's image, decoded from bytes that hash to its record; None (reported) if they do not.

    Hashing the very bytes that are scored is what keeps a wrong digest out of every score row.
    """
    try:
        data = store.resolve_image(record["image"]).read_bytes()
    except FileNotFoundError:
        data = b""
    if sha256_bytes(data) != record["sha256"]:
        logger.warning("%s: image %s does not match its recorded sha256; not scored (regenerate it with the "
                       "command that made the run)", store.root, record["image"])
        return None
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def score_row(scorer_key: str, key: ItemKey, image_sha256: str, value: float,
              details: dict[str, Any] | None) -> dict[str, Any]:
    """A score row as stored: JSON-normalised content plus its checksum (imgbench.audit.row_checksum)."""
    encoded, nonfinite = encode_value(value)
    row: dict[str, Any] = {"prompt_id": key[0], "seed": key[1], "image_sha256": image_sha256, "value": encoded}
    if nonfinite:
        row["nonfinite"] = nonfinite
    if details:
        row["details"] = dict(details)
    row = json.loads(json.dumps(row, allow_nan=False))
    row["checksum"] = row_checksum(row, scorer_key)
    return row


def score_items(store: RunStore, scorer: Scorer, items: Sequence[tuple[Prompt, int]], shard: Shard,
                batch_size: int, generations: dict[ItemKey, dict[str, Any]] | None = None) -> int:
    """Heal this shard's rows of the scorer, then score items that have an image but no trusted row.

    `generations`: the run's trusted generation records, when the caller has them already.
    """
    key = scorer_key(scorer)
    if generations is None:
        generations = store.load_generations(verify=False)
    own = store.scores_file(key, shard)
    with store.lock(store.lock_name(own)):
        if store.scorer_meta_file(key).exists() and not store.score_files(key):
            logger.warning("%s: the rows of %s are missing though its identity file is there (a deleted rows "
                           "file); every item is rescored", store.root, key)
        found, blocked = heal(store, lambda: audit_scores(store, key, generations), store.lock_name(own))
        own.parent.mkdir(parents=True, exist_ok=True)
        own.touch()  # before the identity file, so "identity without rows" always means rows were lost
        store.write_scorer_meta(key, {"identity": scorer.identity(), "higher_is_better": scorer.higher_is_better,
                                      "range": [scorer.value_range[0], scorer.value_range[1]]})
        todo = [(p, s) for p, s in items
                if (p.id, s) in generations and (p.id, s) not in found.valid and (p.id, s) not in blocked]
        if not todo:
            return 0
        scored = 0
        with store.appender(own) as out, progress_bar(f"score {scorer.name}", len(todo)) as advance:
            for batch in _batches(todo, batch_size):
                records = [generations[(p.id, s)] for p, s in batch]
                loaded = [(item, record, image) for item, record in zip(batch, records, strict=True)
                          if (image := _verified_image(store, record)) is not None]
                if not loaded:
                    continue
                results = scorer.score([image for _, _, image in loaded], [p for (p, _), _, _ in loaded])
                if len(results) != len(loaded):
                    raise RuntimeError(f"scorer {scorer.name} returned {len(results)} results for {len(loaded)} "
                                       f"images")
                for ((prompt, seed), record, _), result in zip(loaded, results, strict=True):
                    out.append(score_row(key, (prompt.id, seed), record["sha256"], result.value, result.details))
                    scored += 1
                advance(len(batch))
    return scored


def build_scorers(names: Sequence[str], scorer_args: dict[str, dict[str, Any]] | None = None) -> list[Scorer]:
    """Scorers by name; `scorer_args` (from --scorer-arg) may only name scorers that run."""
    if not names:
        raise UserError("no scorer to run: pass --scorer NAME (see `imgbench ls scorers`) or give the task "
                        "a `scorers:` list.")
    scorer_args = scorer_args or {}
    stray = sorted(set(scorer_args) - set(names))
    if stray:
        raise UserError(f"--scorer-arg names {', '.join(map(repr, stray))}, which is not among the scorers run "
                        f"({', '.join(names)}).")
    return [build_scorer(name, scorer_args.get(name)) for name in dict.fromkeys(names)]


@dataclass
class RunOutcome:
    plan: RunPlan
    generated: int
    scored: dict[str, int]
    metrics: dict[str, Any] | None


def prepare(request: RunRequest, score: bool = True) -> tuple[RunPlan, list[Scorer]]:
    """The plan and the scorers of an invocation, or ONE error naming everything the run lacks.

    Building them resolves every weight and data file the run reads (what `imgbench download` records).
    """
    missing: list[MissingFiles] = []
    plan = collect_missing(missing, lambda: plan_run(request))
    names = request.scorers or resolve_task(request.task, request.prompts_file,
                                                   text_column=request.text_column).scorers
    scorers = collect_missing(missing, lambda: build_scorers(names, request.scorer_args)) if score else []
    if missing or plan is None or scorers is None:
        raise missing_together(missing)
    return plan, scorers


def execute(request: RunRequest, score: bool = True) -> RunOutcome:
    """The whole pipeline for one invocation (`run` when score=True, `generate` otherwise)."""
    plan, scorers = prepare(request, score)
    plan.store.check_identity(plan.identity)
    had_metrics = plan.store.metrics_json.exists()
    open_run(plan, [scorer_key(s) for s in scorers])
    for line in leaks(plan.store.read_manifest().get("parts", []), plan.seeds):
        logger.warning("run %s: %s", plan.run_id, line)
    generated = generate_phase(plan)
    scored: dict[str, int] = {}
    metrics = None
    if score:
        generations = plan.store.load_generations(verify=False)
        for scorer in scorers:
            scored[scorer.name] = score_items(plan.store, scorer, plan.own_items, request.shard, plan.batch_size,
                                              generations)
        primary = plan.task.spec.primary_scorer if plan.task.spec.primary_scorer in scored else scorers[0].name
        if request.ranks.finish_together():
            metrics = write_metrics_if_complete(plan.store, plan.items, item_set(plan),
                                                [scorer_key(s) for s in scorers], primary)
        if metrics is not None and not had_metrics and not generated and not any(scored.values()) \
                and request.ranks.world == 1:
            logger.warning("%s was missing though every item was already generated and scored (deleted, or a "
                           "process was killed before writing it); recomputed from the records",
                           plan.store.metrics_json)
    plan.store.remove_stale_temp_files()
    return RunOutcome(plan=plan, generated=generated, scored=scored, metrics=metrics)


def command_line() -> str:
    return " ".join(["imgbench", *sys.argv[1:]])
