"""Cost per image of every run on the `shapes` test task (results/README.md), from the runs' own records.

`seconds` in a generation record is the method's own time per image (its share of the batch call); a run
that reuses the base run's images as its initial images (img and its controls) spends nothing on them, so
the whole cost of such an image is the base run's seconds plus its own. Model draws and MLLM calls per
image follow from the records (`initial_image`) and the method's resolved parameters. Run from the repo root;
`python results/shapes/cost.py shapes-dpo` tables the runs of another model.
"""

import glob
import json
import sys
from pathlib import Path

ROOT = Path("results/runs/shapes") / (sys.argv[1] if len(sys.argv) > 1 else "shapes")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(run.glob("generations*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


rows, own, base_seconds = [], [], None
OWN = ("planner_calls", "detector_calls", "denoising_steps")  # SLD counts these too (methods/sld/method.py)
for manifest_path in sorted(glob.glob(str(ROOT / "*" / "*" / "run.json"))):
    run = Path(manifest_path).parent
    manifest = json.loads(Path(manifest_path).read_text())
    items = records(run)
    if not items:
        continue
    params = manifest["identity"]["method"].get("params", {})
    seconds = sum(r["seconds"] for r in items) / len(items)
    costs = [r["info"]["cost"] for r in items if "cost" in r.get("info", {})]
    edits = 0.0
    if len(costs) == len(items):  # methods that count their own work (method_steps.Cost)
        reuses = any(isinstance(r["info"].get("initial_image"), dict) for r in items)
        draws = sum(c["generations"] for c in costs) / len(items)
        mllm = sum(c["mllm_calls"] for c in costs) / len(items)
        edits = sum(c["edit_passes"] for c in costs) / len(items)
    else:
        generated_initial = sum(1 for r in items if r.get("info", {}).get("initial_image") == "generated")
        regenerations = params.get("rounds", 1) if manifest["identity"]["method"]["name"] == "img" else 0
        reuses = regenerations > 0
        draws = (regenerations + generated_initial / len(items)) if regenerations else 1
        mllm = regenerations if params.get("guidance") in ("mllm", "finetuned-mllm") else 0
    if costs and all(key in costs[0] for key in OWN):
        label = manifest["method"] + (f"@detector={params['detector']}" if params.get("detector") == "oracle" else "")
        own.append((label, manifest["run_id"], [sum(c[k] for c in costs) / len(items) for k in OWN]))
    if manifest["method"] == "base":
        base_seconds = seconds
    rows.append((manifest["method"], manifest["run_id"], len(items), seconds, reuses, draws, mllm, edits))

print("| run | id | images | seconds / image (own) | with the reused base image | new model draws / image "
      "| MLLM calls / image | edit passes / image |")
print("|---|---|---|---|---|---|---|---|")
for method, run_id, n, seconds, reuses, draws, mllm, edits in rows:
    total = f"{seconds + base_seconds:.3f}" if reuses and base_seconds is not None else f"{seconds:.3f}"
    print(f"| {method} | {run_id} | {n} | {seconds:.3f} | {total} | {draws:g} | {mllm:g} | {edits:.3g} |")
if own:
    print("\n| run | id | " + " | ".join(k.replace("_", " ") + " / image" for k in OWN) + " |")
    print("|---|---|" + "---|" * len(OWN))
    for label, run_id, means in own:
        print(f"| {label} | {run_id} | " + " | ".join(f"{m:.3g}" for m in means) + " |")
