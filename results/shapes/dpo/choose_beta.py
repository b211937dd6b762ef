"""The val choice of β for `shapes-dpo`, printed as `beta B` on the last line (read by reproduce_shapes.sh).

Rule (fixed before the val runs): the β whose 1,000-step UNet has the highest mean `shapes-exact` on `shapes-val`
(seeds 100-107, base method); a tie keeps the authors' 5,000. The implicit reward accuracy on the held-out val
pairs is printed beside it, for information only. Reads `results/shapes/dpo/val-compare.json` and
`results/shapes/dpo/val-reward-B.json` (written by `reproduce_shapes.sh dpo_grid`). Run from the repo root.
"""

import json
from pathlib import Path

HERE = Path("results/shapes/dpo")
PAPER = 5000.0

(result,) = [r for r in json.loads((HERE / "val-compare.json").read_text()) if r["scorer"].startswith("shapes-exact")]
means = {}
for label, run_id in result["run_ids"].items():
    (manifest,) = Path("results/runs/shapes-val").glob(f"*/*/{run_id}/run.json")
    for part in json.loads(manifest.read_text())["parts"]:  # a DPO run's UNet part names its manifest
        if part["name"].startswith("unet ") and part["manifest"]:
            beta = json.loads(Path(part["manifest"]).read_text())["config"]["beta"]
            means[float(beta)] = result["overall"]["runs"][label]["mean"]
best = max(means.values())
choice = PAPER if means.get(PAPER) == best else min(b for b, m in means.items() if m == best)
for beta, mean in sorted(means.items()):
    reward = json.loads((HERE / f"val-reward-{beta:g}.json").read_text())
    low, high = reward["ci95_prompt_bootstrap"]
    print(f"beta {beta:g}: shapes-val mean {mean:.4f}, val reward accuracy {reward['reward_accuracy']:.3f} "
          f"[{low:.3f}, {high:.3f}]{'  <- chosen' if beta == choice else ''}")
print(f"beta {choice:g}")
