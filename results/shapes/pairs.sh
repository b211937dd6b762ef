#!/usr/bin/env bash
# Preference pairs for the IMG aligner (and the DPO baseline, which trains on the same pairs): base runs on
# shapes-train captions, 8 seeds per caption, then `imgbench pairs --mode all` (winner = a seed shapes-exact
# accepts, loser = one it rejects, same caption; equal scores never pair).
# Held-out noise (DESIGN §8): seeds come from the parts' range, starting at 50,000, and every chunk of 8
# captions gets a block of 8 seeds of its own, so the pairs hold 8 seeds x (captions / 8) distinct noise
# tensors (layouts), none of them a test (0-7) or val (100-107) seed. All chunks extend one run folder.
set -euo pipefail
export OMP_NUM_THREADS=1
OUT=${OUT:-results/runs/img-shapes}
CHUNK=8
mkdir -p "$OUT"
block=0
for SPEC in single-object:16 counting:34 colors:200 two-object:120 color-attr:120 position:160; do
  skill=${SPEC%%:*} n=${SPEC##*:}
  for ((offset = 0; offset < n; offset += CHUNK)); do
    first=$((50000 + CHUNK * block)); block=$((block + 1))
    imgbench run --method base --task shapes-train --tags "$skill" --offset "$offset" --limit "$((n - offset < CHUNK ? n - offset : CHUNK))" \
      --seeds "$first-$((first + CHUNK - 1))" --batch-size 64 --scorer shapes-exact --output "$OUT/train-runs" \
      > "$OUT/train-run.log"
  done
done
RUN=$(sed -n 's/^run \([0-9a-f]*\):.*/\1/p' "$OUT/train-run.log")
imgbench pairs "$RUN" --output "$OUT/train-runs" --scorer shapes-exact --mode all --out "$OUT/pairs.jsonl"
