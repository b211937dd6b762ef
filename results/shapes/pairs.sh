#!/usr/bin/env bash
# Step 1 of results/reproduce_shapes.sh: base runs on shapes-train (4 seeds per caption, a per-skill subset so
# every skill is represented) and preference pairs: winner = a seed shapes-exact accepts, loser = one it rejects,
# same caption (--mode all: every accepted × rejected seed pair; equal scores never pair).
set -euo pipefail
export OMP_NUM_THREADS=1
OUT=${OUT:-results/runs/img-shapes}
mkdir -p "$OUT"
: > "$OUT/pairs.jsonl"
for SPEC in single-object:34 counting:34 colors:100 two-object:40 color-attr:40 position:40; do
  SKILL=${SPEC%%:*} N=${SPEC##*:}
  imgbench run --method base --task shapes-train --tags "$SKILL" --limit "$N" --seeds 0-3 --batch-size 64 \
    | tee "$OUT/run-$SKILL.log"
  RUN=$(sed -n 's/^run \([0-9a-f]*\):.*/\1/p' "$OUT/run-$SKILL.log")
  imgbench pairs "$RUN" --scorer shapes-exact --mode all --out "$OUT/pairs-$SKILL.jsonl"
  cat "$OUT/pairs-$SKILL.jsonl" >> "$OUT/pairs.jsonl"
done
wc -l "$OUT"/pairs*.jsonl
