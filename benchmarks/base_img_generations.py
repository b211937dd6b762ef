"""Generations per item for base + IMG on the shapes world, in either order: the target is ≤ 2.0.

    python benchmarks/base_img_generations.py [--limit 6] [--seeds 0-1]

Runs `imgbench run --task shapes --limit N --seeds S` with `--method img` then `--method base` into one fresh
results folder, and again in the other order into another, counting every image the shapes model draws
(its `generate` is wrapped in this process). IMG needs two drawings per item (initial and final image); the
other run should draw none: base adopts IMG's initial images (imgbench.adopt), IMG reuses base's images.
Prints one JSON line per order and exits 1 if either is above the target.
"""

from __future__ import annotations

import argparse
import json
import tempfile

TARGET = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=6, help="first N prompts of the shapes task")
    parser.add_argument("--seeds", default="0-1")
    args = parser.parse_args()
    from imgbench.cli import main as cli
    from imgbench.util.text import parse_seeds
    from imgbench.worlds.shapes.model import ShapesModel

    drawn = [0]
    original = ShapesModel.generate

    def counting(self, requests, *rest, **kwargs):
        drawn[0] += len(requests)
        return original(self, requests, *rest, **kwargs)

    ShapesModel.generate = counting  # type: ignore[method-assign]
    worst = 0.0
    for order in (("img", "base"), ("base", "img")):
        drawn[0] = 0
        with tempfile.TemporaryDirectory() as out:
            common = ["--task", "shapes", "--limit", str(args.limit), "--seeds", args.seeds, "--output", out]
            for method in order:
                if cli(["run", "--method", method, *common]) != 0:
                    return 2
        items = args.limit * len(parse_seeds(args.seeds))
        per_item = drawn[0] / items
        worst = max(worst, per_item)
        print(json.dumps({"order": " then ".join(order), "items": items, "generations": drawn[0],
                          "generations_per_item": round(per_item, 3), "target": TARGET}))
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
