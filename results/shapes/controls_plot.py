"""The controls figure of results/README.md: each run's paired difference from base on the shapes test split,
with its two-way 95% interval and the eight per-seed differences as dots (a result carried by one seed shows).

Reads the `imgbench compare --json` files that `reproduce_shapes.sh test` writes; run from the repo root:
    python results/shapes/controls_plot.py --out results/shapes/controls
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def figure(result: dict, out: Path) -> list[Path]:
    comparisons = result["overall"]["comparisons"]
    labels = list(comparisons)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.6))
    for row, label in enumerate(labels):
        c = comparisons[label]
        y = len(labels) - 1 - row
        seeds = list(c["per_seed_diff"].values())
        ax.scatter(seeds, [y + 0.18] * len(seeds), s=14, color="0.55", zorder=2,
                   label="one seed (mean over prompts)" if row == 0 else None)
        ax.errorbar(c["mean_diff"], y, xerr=[[c["mean_diff"] - c["ci_low"]], [c["ci_high"] - c["mean_diff"]]],
                    fmt="o", color="C3" if c["verdict"] == "worse" else "C2" if c["verdict"] == "better" else "C0",
                    capsize=3, zorder=3, label="Δ, two-way 95% CI" if row == 0 else None)
        ax.text(1.01, y, f"p {c['p_holm']:.2g}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(labels)), [label.removeprefix("shapes/") for label in reversed(labels)])
    items = result["items"]
    ax.set_xlabel(f"Δ vs {result['baseline']} ({result['scorer'].split('@')[0]}, higher is better)")
    ax.set_title(f"shapes test: {items['n_prompts']} prompts × {items['n_seeds']} seeds; Holm p at right",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    name = out / f"controls-{result['scorer'].split('@')[0]}"
    paths = [name.with_suffix(".png"), name.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=130, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "controls"))
    args = parser.parse_args()
    for scorer in ("shapes-exact", "shapes-clip"):
        for result in json.loads((HERE / f"compare-{scorer}.json").read_text()):
            print("wrote", ", ".join(map(str, figure(result, Path(args.out)))))


if __name__ == "__main__":
    main()
