"""Finding runs in a results folder and reading their per-item scores (DESIGN §2, §5).

A run is named by its id (or a unique prefix) or by a selector `model/method[@variant]` on a
task, where the variant lists the method parameters that differ from the method's registered
defaults for that model (e.g. `sdxl/img@ip_scale=0.4`); no `@` means the default variant. A
selector matching several runs (e.g. two dtypes of one model) is refused with the candidates.
Folders are scanned, never "the last run" assumed.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgbench.errors import DamagedRunError, UserError
from imgbench.store import ItemKey, RunStore, decode_value
from imgbench.util.text import check_name, parse_key_values

logger = logging.getLogger(__name__)


@functools.cache
def default_params(method: str, model: str) -> dict[str, Any]:
    """Constructor defaults ⊕ method YAML ⊕ per-model defaults: what a run without --method-arg resolves to."""
    from imgbench import catalog
    from imgbench.api.registry import import_target
    from imgbench.components import resolve_method_params

    if method not in catalog.methods():
        logger.warning("method %r is not registered here; its runs' variants list every parameter", method)
        return {}
    spec = catalog.methods().get(method).spec
    defaults: dict[str, Any] = {}
    try:
        cls = import_target(spec.target, spec.needs, what=f"method {method!r}")
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    except (UserError, ImportError) as exc:
        logger.warning("cannot import method %r (%s); variants are judged against its YAML defaults only",
                       method, exc)
    if model in catalog.models():
        return {**defaults, **resolve_method_params(spec, catalog.models().get(model).spec, {})}
    return {**defaults, **spec.params}


def variant_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The method parameters of a run that differ from the registered defaults."""
    identity = manifest.get("identity", {})
    params = identity.get("method", {}).get("params", {}) or {}
    defaults = default_params(manifest.get("method", ""), manifest.get("model", ""))
    return {k: v for k, v in sorted(params.items()) if k not in defaults or defaults[k] != v}


def format_variant(variant: dict[str, Any]) -> str:
    return ",".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in variant.items())


@dataclass(frozen=True, eq=False)
class RunInfo:
    """A run folder as found on disk; one object per folder, compared by identity."""

    root: Path
    run_id: str
    task: str
    model: str
    method: str
    variant: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def label(self) -> str:
        """model/method[@variant]: the leaderboard row and the selector that names this run."""
        suffix = format_variant(self.variant)
        return f"{self.model}/{self.method}" + (f"@{suffix}" if suffix else "")

    @property
    def store(self) -> RunStore:
        return RunStore(self.root)


def scan_runs(output: str | Path, task: str | None = None) -> list[RunInfo]:
    """Every sound run folder under OUTPUT/runs (of one task, if given), sorted by task and label.

    A folder whose run.json is missing, damaged or edited is skipped and named (a warning): one damaged run
    must not take a whole comparison or report down, nor be trusted in it.
    """
    if task is not None:
        check_name(task, "--task")
    runs_dir = Path(output) / "runs"
    pattern = f"{task}/*/*/*" if task else "*/*/*/*"
    runs = []
    for folder in sorted(p for p in runs_dir.glob(pattern) if p.is_dir()):
        try:
            manifest = RunStore(folder).read_manifest()
        except DamagedRunError as exc:
            logger.warning("skipped: %s", exc)
            continue
        except UserError:  # not a run folder at all (e.g. an empty one left by a refused command)
            continue
        runs.append(RunInfo(root=folder, run_id=manifest["run_id"], task=manifest["task"], model=manifest["model"],
                            method=manifest["method"], variant=variant_of(manifest), manifest=manifest))
    if not runs:
        where = f"{runs_dir}/{task}" if task else str(runs_dir)
        raise UserError(f"no run folders under {where}; make some with `imgbench run --task {task or 'TASK'} "
                        f"--method METHOD --output {output}` (or point --output at your results folder).")
    return sorted(runs, key=lambda r: (r.task, r.label, r.run_id))


def _candidates(runs: Sequence[RunInfo]) -> str:
    return "; ".join(f"{r.label} (run {r.run_id}, {r.root})" for r in runs)


def split_selectors(values: Sequence[str] | None) -> list[str]:
    """Comma-separated selectors → selectors, keeping `model/method@a=1,b=2` whole.

    A variant's parameters are comma-separated too, so a piece like `b=2` (a `=` and no `/`; run ids
    have neither) continues the selector before it rather than starting a new one.
    """
    selectors: list[str] = []
    for value in values or []:
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if "=" in piece and "/" not in piece and selectors and "@" in selectors[-1]:
                selectors[-1] += f",{piece}"
            else:
                selectors.append(piece)
    return selectors


def select_run(runs: Sequence[RunInfo], selector: str) -> RunInfo:
    """One run by id / id prefix / folder, or by `model/method[@k=v,...]` (no @ = default parameters)."""
    selector = selector.strip()
    if "/" not in selector or (Path(selector) / "run.json").exists():
        path = Path(selector)
        hits = [r for r in runs if r.run_id.startswith(selector) or r.root.resolve() == path.resolve()]
    else:
        head, _, variant_text = selector.partition("@")
        model, _, method = head.partition("/")
        wanted = parse_key_values([v for v in variant_text.split(",") if v.strip()], "selector variant")
        hits = [r for r in runs if r.model == model and r.method == method and r.variant == wanted]
        if not hits:
            same = [r for r in runs if r.model == model and r.method == method]
            hint = f" Runs of {model}/{method}: {_candidates(same)}." if same else ""
            raise UserError(f"no run matches {selector!r} on this task.{hint} Available: "
                            f"{', '.join(sorted({r.label for r in runs}))}.")
    if not hits:
        raise UserError(f"no run with id {selector!r}; available: {_candidates(runs)}.")
    if len(hits) > 1:
        raise UserError(f"{selector!r} matches {len(hits)} runs: {_candidates(hits)}. Name one by its run id.")
    return hits[0]


def scorer_key(run: RunInfo, scorer: str | None, default: str | None = None) -> str:
    """The `name@hash` key of a scorer in a run, from a name or a full key."""
    keys = run.store.scorer_keys()
    if not keys:
        raise UserError(f"run {run.label} ({run.root}) has no scores; score it with `imgbench score --run {run.root} "
                        f"--scorer NAME`.")
    name = scorer or default
    if name is None:
        if len({k.split('@')[0] for k in keys}) == 1 and len(keys) == 1:
            return keys[0]
        raise UserError(f"run {run.label} has several scorers ({', '.join(keys)}); choose one with --scorer.")
    hits = [k for k in keys if k == name or k.split("@")[0] == name]
    if not hits:
        raise UserError(f"run {run.label} has no scores from scorer {name!r}; it has {', '.join(keys)}. Score it "
                        f"with `imgbench score --run {run.root} --scorer {name}` or pick one of those.")
    if len(hits) > 1:
        raise UserError(f"run {run.label} has scores from several versions of {name!r}: {', '.join(hits)}; "
                        f"name one in full with --scorer NAME@HASH.")
    return hits[0]


@dataclass(frozen=True)
class ItemScores:
    """One run's per-item scores from one scorer, with what tables and the HTML report need."""

    run: RunInfo
    scorer_key: str
    higher_is_better: bool
    value_range: tuple[float, float] | None
    values: dict[ItemKey, float]
    tags: dict[str, tuple[str, ...]]
    generations: dict[ItemKey, dict[str, Any]]
    details: dict[ItemKey, dict[str, Any]]

    @property
    def nonfinite(self) -> int:
        return sum(1 for v in self.values.values() if not np.isfinite(v))


def load_scores(run: RunInfo, key: str) -> ItemScores:
    """Score rows whose image still hashes to its record (images are verified: a changed file is not trusted)."""
    store = run.store
    generations = store.load_generations(verify=True)
    rows = store.load_scores(key, generations)
    if not rows:
        raise UserError(f"run {run.label} ({run.root}) has no valid {key} score rows; rescore it with "
                        f"`imgbench score --run {run.root} --scorer {key.split('@')[0]}`.")
    identity = store.read_scorer_meta(key)
    value_range = identity.get("range")
    return ItemScores(run=run, scorer_key=key, higher_is_better=bool(identity.get("higher_is_better", True)),
                      value_range=tuple(value_range) if value_range else None,
                      values={k: decode_value(r) for k, r in rows.items()},
                      tags={k[0]: tuple(g.get("tags", ())) for k, g in generations.items()},
                      generations={k: generations[k] for k in rows},
                      details={k: r.get("details") or {} for k, r in rows.items()})


def load_comparable(runs: Sequence[RunInfo], scorer: str | None, default: str | None = None) -> list[ItemScores]:
    """Scores of several runs from the same scorer identity; different versions are refused (not comparable)."""
    keys = [scorer_key(r, scorer, default) for r in runs]
    if len(set(keys)) > 1:
        listing = ", ".join(f"{r.label}: {k}" for r, k in zip(runs, keys, strict=True))
        raise UserError(f"the runs were scored by different versions of the scorer ({listing}); their numbers are "
                        f"not comparable. Rescore them with one version (`imgbench score --run RUN --scorer NAME`) "
                        f"and pass --scorer NAME@HASH.")
    return [load_scores(r, k) for r, k in zip(runs, keys, strict=True)]
