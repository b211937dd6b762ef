#!/usr/bin/env bash
# Step 1 of results/reproduce_shapes.sh: base runs on shapes-train (4 seeds per caption; a per-skill subset so
# every skill is represented: --limit alone would take the first skills only) into one run of a separate
# results folder, then preference pairs: winner = a seed shapes-exact accepts, loser = one it rejects, same
# caption (--mode all: every accepted × rejected pair of seeds; equal scores never pair).
set -euo pipefail
export OMP_NUM_THREADS=1
OUT=${OUT:-results/runs/img-shapes}
mkdir -p "$OUT"
for SPEC in single-object:34 counting:34 colors:100 two-object:20 color-attr:20 position:20; do
  imgbench run --method base --task shapes-train --tags "${SPEC%%:*}" --limit "${SPEC##*:}" --seeds 0-3 \
    --batch-size 64 --output "$OUT/train-runs" | tee "$OUT/train-run.log"
done
RUN=$(sed -n 's/^run \([0-9a-f]*\):.*/\1/p' "$OUT/train-run.log")
imgbench pairs "$RUN" --output "$OUT/train-runs" --scorer shapes-exact --mode all --out "$OUT/pairs.jsonl"
