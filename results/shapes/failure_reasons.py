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
