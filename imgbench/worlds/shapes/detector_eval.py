"""How well `shapes-detector` reads the shapes model's held-out drawings, against the checker's reading.

COCO-style object matching: predictions in descending score take the unmatched checker object they
overlap best, a match needing mask IoU or box IoU ≥ MATCH_IOU; precision and recall count matches,
and matched pairs give colour and shape accuracy and box IoU. The checker's off-palette blobs have no
name SLD could use, so they are not objects to find, and a prediction on one is neither right nor wrong
(COCO's "ignore" regions). Drawings are of val and test captions at the test seeds, which no part of
the detector saw (DESIGN §8).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.records import GenerationRequest
from imgbench.errors import UserError
from imgbench.provenance import leaks, read_part
from imgbench.util.boxes import xywh_iou
from imgbench.worlds.shapes.detector import Found, oracle
from imgbench.worlds.shapes.grammar import COLORS
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.tasks import split_prompts

logger = logging.getLogger(__name__)

BATCH = 64
RUN_SPLITS = {"shapes": "test", "shapes-val": "val"}
MATCH_IOU = 0.5


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def match(found: list[Found], truth: list[Found]) -> list[tuple[int, int, float]]:
    """(prediction index, truth index, box IoU) per match, greedy by descending score."""
    free = set(range(len(truth)))
    pairs = []
    for i in sorted(range(len(found)), key=lambda k: -found[k].score):
        best, best_overlap = None, MATCH_IOU
        for j in sorted(free):
            overlap = max(mask_iou(found[i].mask, truth[j].mask), xywh_iou(found[i].box, truth[j].box))
            if overlap >= best_overlap:
                best, best_overlap = j, overlap
        if best is not None:
            free.discard(best)
            pairs.append((i, best, xywh_iou(found[i].box, truth[best].box)))
    return pairs


def tally(found: list[Found], truth: list[Found]) -> dict[str, Any]:
    """One image's counts: true and false positives, misses, and the matched pairs' agreement."""
    pairs = match(found, truth)
    named = [t.color in COLORS for t in truth]
    hits = [(i, j, iou) for i, j, iou in pairs if named[j]]
    ignored = len(pairs) - len(hits)
    exact = sorted((f.color, f.shape) for f in found) == sorted((t.color, t.shape) for t, n in zip(truth, named,
                                                                                                  strict=True) if n)
    return {"tp": len(hits), "fp": len(found) - len(pairs), "fn": sum(named) - len(hits), "ignored": ignored,
            "color": sum(found[i].color == truth[j].color for i, j, _ in hits),
            "shape": sum(found[i].shape == truth[j].shape for i, j, _ in hits),
            "box_iou": sum(iou for _, _, iou in hits), "exact": int(exact)}


def summarize(tallies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total = {key: sum(t[key] for t in tallies) for key in ("tp", "fp", "fn", "ignored", "color", "shape", "box_iou",
                                                           "exact")}
    tp = total["tp"]

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 4) if b else None

    return {"images": len(tallies), "objects": tp + total["fn"], "found": tp + total["fp"],
            "precision": ratio(tp, tp + total["fp"]), "recall": ratio(tp, tp + total["fn"]),
            "color_accuracy": ratio(total["color"], tp), "shape_accuracy": ratio(total["shape"], tp),
            "mean_box_iou": ratio(total["box_iou"], tp), "image_exact": ratio(total["exact"], len(tallies)),
            "ignored_off_palette": total["ignored"]}


def stored(model: Any, runs: Sequence[Path]) -> dict[tuple[str, str, int], Path]:
    """Image files of `base` runs of this very model on `shapes` / `shapes-val`, by (split, prompt id, seed): the
    model draws an image from its prompt and seed alone, so a stored drawing is the drawing (DESIGN §6)."""
    found = {}
    for run in runs:
        identity = json.loads((run / "run.json").read_text())["identity"] if (run / "run.json").is_file() else {}
        split = RUN_SPLITS.get(identity.get("task", {}).get("name"))
        same_model = identity.get("model", {}).get("weights_sha256") == model.identity()["weights_sha256"]
        if identity.get("method", {}).get("name") != "base" or split is None or not same_model:
            raise UserError(f"{run} is not a `--method base` run of this shapes model on task shapes or shapes-val; "
                            f"pass such a run folder to --images-from, or leave it out to draw every image.")
        for line in (run / "generations.jsonl").read_text().splitlines():
            row = json.loads(line)
            found[(split, row["prompt_id"], int(row["seed"]))] = run / row["image"]
    return found


def drawings(model: Any, splits: Sequence[str], seeds: Sequence[int],
             runs: Sequence[Path] = ()) -> list[tuple[str, Any]]:
    """(split, image) per caption of the splits and seed, drawn by the shapes model or read from its `runs`."""
    requests = [GenerationRequest(p, s, CANVAS, CANVAS) for split in splits for p in split_prompts(split)
                for s in seeds]
    files = stored(model, runs)
    images: dict[int, Any] = {}
    for i, r in enumerate(requests):
        path = files.get((r.prompt.metadata["split"], r.prompt.id, r.seed))
        if path is not None:
            images[i] = Image.open(path).convert("RGB")
    missing = [i for i in range(len(requests)) if i not in images]
    logger.info("%d drawings stored, %d to draw", len(images), len(missing))
    for start in range(0, len(missing), BATCH):
        chunk = missing[start:start + BATCH]
        images.update(zip(chunk, model.generate([requests[i] for i in chunk]), strict=True))
    return [(r.prompt.metadata["split"], images[i]) for i, r in enumerate(requests)]


def evaluate(model: Any, detector: Any, splits: Sequence[str], seeds: Sequence[int],
             runs: Sequence[Path] = ()) -> dict[str, Any]:
    """Overall and per-split metrics, the detector's identity and any of its training seeds among `seeds`."""
    rows = drawings(model, splits, seeds, runs)
    images = [image for _, image in rows]
    tallies = [tally(found, truth) for found, truth in zip(detector.detect(images), oracle(images), strict=True)]
    part = read_part("shapes-detector", detector.path / "manifest.json")
    return {"detector": detector.identity(), "model": model.identity(), "splits": list(splits), "seeds": list(seeds),
            "images_from": [str(run) for run in runs],
            "match": f"mask or box IoU >= {MATCH_IOU}, greedy by score", "leaks": leaks([part], seeds),
            "overall": summarize(tallies),
            "per_split": {s: summarize([t for (split, _), t in zip(rows, tallies, strict=True) if split == s])
                          for s in splits}}
