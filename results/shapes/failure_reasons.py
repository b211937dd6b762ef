"""Why images fail: the exact checker's first failure reason over the seed-0 items of every shapes run
(base and each IMG variant), and the mean number of objects the checker detects. Run from the repo root."""

import collections
import glob
import json
import re
from pathlib import Path

rows = []
for run in sorted(glob.glob("results/runs/shapes/shapes/*/*/run.json")):
    params = json.loads(Path(run).read_text())["identity"]["method"].get("params", {})
    scores = glob.glob(str(Path(run).parent / "scores" / "shapes-exact@*.jsonl"))
    if not scores:
        continue
    items = [r for r in map(json.loads, open(scores[0])) if r["seed"] == 0]
    label = "base" if not params else ", ".join(
        [Path(params["aligner"]).parent.name.removeprefix("aligner-") or "shipped"] +
        [f"{k}={params[k]}" for k in ("ip_scale", "guidance", "passes", "rounds")])
    reasons = collections.Counter(re.sub(r" \(.*\)", "", r["details"]["reason"]) for r in items)
    objects = sum(len(r["details"]["detected"]) for r in items) / max(1, len(items))
    rows.append((label, len(items), objects, reasons))
kinds = sorted({k for row in rows for k in row[3]})
print("| run | items | objects | " + " | ".join(kinds) + " |")
print("|---" * (3 + len(kinds)) + "|")
for label, n, objects, reasons in rows:
    print(f"| {label} | {n} | {objects:.2f} | " + " | ".join(str(reasons.get(k, 0)) for k in kinds) + " |")

# Per seed: with an early UNet the seed fixes most of the layout, so the seed is a strong factor.
print()
print("| run | scorer | seed 0 | seed 1 | seed 2 | seed 3 |")
print("|---|---|---|---|---|---|")
for run in sorted(glob.glob("results/runs/shapes/shapes/*/*/run.json")):
    params = json.loads(Path(run).read_text())["identity"]["method"].get("params", {})
    if params and not (params.get("aligner") == "shapes/aligner.safetensors" and params.get("guidance") ==
                       "finetuned-mllm" and params.get("passes") == 3 and params.get("rounds") == 1):
        continue
    for scorer in ("shapes-exact", "shapes-clip"):
        values = collections.defaultdict(list)
        for path in glob.glob(str(Path(run).parent / "scores" / f"{scorer}@*.jsonl")):
            for record in map(json.loads, open(path)):
                values[record["seed"]].append(record["value"])
        if len(values) == 4:
            label = "base" if not params else f"img ip_scale={params['ip_scale']}"
            means = [sum(values[s]) / len(values[s]) for s in range(4)]
            print(f"| {label} | {scorer} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
