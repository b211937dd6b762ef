"""The ablation table of results/README.md, from the `imgbench compare --json` files of reproduce_shapes.sh."""

import json
from pathlib import Path

HERE = Path(__file__).parent
print("| family | run | mean | Δ vs base [95% CI] | p perm (Holm) | win/tie/loss |")
print("|---|---|---|---|---|---|")
for family in ("ip_scale", "guidance", "passes", "rounds", "training"):
    for block in json.loads((HERE / f"ablation-{family}.json").read_text()):
        if not block["scorer"].startswith("shapes-exact"):
            continue
        means = {name: row["mean"] for name, row in block["overall"]["runs"].items()} \
            if "runs" in block["overall"] else {}
        for name, c in block["overall"]["comparisons"].items():
            label = name.removeprefix("shapes/").replace("results/runs/img-shapes/", "")
            label = label.replace("/aligner.safetensors", "")
            mean = f"{means[name]:.4f}" if name in means else ""
            print(f"| {family} | {label} | {mean} | {c['mean_diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | "
                  f"{c['p_permutation']:.3g} ({c['p_holm']:.3g}) | {c['wins']}/{c['ties']}/{c['losses']} |")
