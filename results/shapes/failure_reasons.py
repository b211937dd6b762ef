"""Why images fail, per run on the `shapes` test task: the exact checker's first failure reason over all
items, the mean number of objects it detects, and the accuracy of each seed (one seed is one noise
tensor, one layout, for every prompt: seeds differ by tens of points). Run from the repo root."""

import collections
import glob
import json
import re
from pathlib import Path

runs = []
for manifest_path in sorted(glob.glob("results/runs/shapes/shapes/*/*/run.json")):
    run = Path(manifest_path).parent
    scores = sorted(run.glob("scores/shapes-exact@*.jsonl"))
    items = [json.loads(line) for path in scores for line in path.read_text().splitlines() if line.strip()]
    if items:
        runs.append((run.parent.name, items))

kinds = sorted({re.sub(r" \(.*\)", "", r["details"]["reason"]) for _, items in runs for r in items})
print("| run | items | objects | " + " | ".join(kinds) + " |")
print("|---" * (3 + len(kinds)) + "|")
for name, items in runs:
    reasons = collections.Counter(re.sub(r" \(.*\)", "", r["details"]["reason"]) for r in items)
    objects = sum(len(r["details"]["detected"]) for r in items) / len(items)
    print(f"| {name} | {len(items)} | {objects:.2f} | " + " | ".join(str(reasons.get(k, 0)) for k in kinds) + " |")

seeds = sorted({r["seed"] for _, items in runs for r in items})
print()
print("| run (shapes-exact) | " + " | ".join(f"seed {s}" for s in seeds) + " |")
print("|---" * (1 + len(seeds)) + "|")
for name, items in runs:
    by_seed = collections.defaultdict(list)
    for r in items:
        by_seed[r["seed"]].append(r["value"])
    print(f"| {name} | " + " | ".join(f"{sum(by_seed[s]) / len(by_seed[s]):.3f}" if by_seed[s] else "" for s in seeds)
          + " |")
