"""Steps that every "look at the first image, then act" method shares (IMG, Instruct-Pix2Pix, ...).

Such a method starts from the model's plain generation for (prompt, seed) — reused bit-identically
from a cached `base` run of the same identity when there is one, else generated, and the item's
record says which — asks an MLLM about it, and accounts for what it spent. DESIGN §3: helpers two
methods need live in the core, never copied between method folders, so the pieces are here:

- `BaseImages`: find the cached base run (`prepare`) and hand out initial images (`initial`).
- `ask`: the MLLM's decoded answers to questions about images.
- `Cost`: generations, edit passes, MLLM calls and seconds per item (the item's record, info "cost").
- `shipped`: a method's per-model YAML names files beside the method (`shapes/templates.json`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest

logger = logging.getLogger(__name__)


@dataclass
class Cost:
    """What one item cost: the counts a reader needs to compare methods at equal spend (issue #20).

    `generations` counts calls of the base model for this item (0 when the initial image came from a
    cached base run), `edit_passes` calls of an editor, `mllm_calls` MLLM forward passes or answers;
    `seconds` is the item's share of the method's wall time for its batch."""

    generations: int = 0
    edit_passes: int = 0
    mllm_calls: int = 0
    _start: float = field(default_factory=time.perf_counter, repr=False)

    def record(self, batch_size: int) -> dict[str, Any]:
        """The JSON written to the item's info; seconds are the batch's wall time split evenly."""
        seconds = (time.perf_counter() - self._start) / max(batch_size, 1)
        return {"generations": self.generations, "edit_passes": self.edit_passes, "mllm_calls": self.mllm_calls,
                "seconds": round(seconds, 6)}


class BaseImages:
    """Initial images: the cached `base` run's when one exists with the same task, model, size and epoch."""

    def __init__(self, reuse: bool = True) -> None:
        self.reuse = reuse
        self._items: dict[tuple[str, int], dict[str, Any]] = {}
        self._run: Any = None

    def prepare(self, context: Any) -> None:
        """Find the `base` run whose identity is this run's with the method swapped for `base`."""
        if not self.reuse or context is None:
            return
        from imgbench.components import build_method
        from imgbench.store import RunStore
        from imgbench.util.hashing import sha256_json

        _, base = build_method("base", context.model_spec, {})
        expected = {**context.identity, "method": base.identity()}
        run_id = sha256_json(expected)[:12]
        root = Path(context.store.root).parent.parent / "base" / run_id
        store = RunStore(root)
        if not store.run_json.exists() or store.read_manifest().get("identity") != expected:
            logger.info("no cached base run at %s; initial images will be generated", root)
            return
        self._run = store
        self._items = store.load_generations(verify=True)
        logger.info("reusing %d initial images from base run %s", len(self._items), run_id)

    def initial(self, requests: Sequence[GenerationRequest], model: Model,
                costs: Sequence[Cost] | None = None) -> tuple[list[Any], list[dict[str, Any]]]:
        """(images, infos): each info says where its image came from; `costs` count fresh generations."""
        from PIL import Image

        images: list[Any] = [None] * len(requests)
        infos: list[dict[str, Any]] = [{} for _ in requests]
        todo = []
        for index, request in enumerate(requests):
            record = self._items.get((request.prompt.id, request.seed))
            if record is not None:
                with Image.open(self._run.resolve_image(record["image"])) as image:
                    images[index] = image.convert("RGB")
                infos[index] = {"initial_image": {"reused_from_run": self._run.root.name, "path": str(
                    self._run.root / record["image"]), "sha256": record["sha256"]}}
            else:
                todo.append(index)
        if todo:
            fresh = model.generate([requests[i] for i in todo])
            for index, image in zip(todo, fresh, strict=True):
                images[index] = image
                infos[index] = {"initial_image": "generated"}
                if costs is not None:
                    costs[index].generations += 1
        return images, infos


def ask(mllm: Any, images: Sequence[Any], questions: Sequence[str], max_tokens: int,
        costs: Sequence[Cost] | None = None) -> list[str]:
    """The MLLM's decoded answers, one per (image, question); each counts as one MLLM call."""
    answers = list(mllm.answer(list(images), list(questions), max_tokens))
    for cost in costs or ():
        cost.mllm_calls += 1
    return answers


def shipped(value: str, folder: str | Path) -> str:
    """A relative path missing from the working directory is looked up in `folder` (the method's folder),
    where per-model defaults ship their files; the value as written stays the run's parameter, and the
    file's sha256 its identity."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists() or not (Path(folder) / path).exists():
        return value
    return str(Path(folder) / path)
