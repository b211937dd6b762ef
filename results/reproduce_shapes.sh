#!/usr/bin/env bash
# Every number in results/README.md comes from this script (from the repository root, on 2 CPU cores):
#   results/reproduce_shapes.sh [llava|llava_base|pairs|train|val|test|tables|all]
# Held-out noise (DESIGN §8, imgbench/worlds/shapes/seeds.py): test = the `shapes` task's seeds 0-7, val =
# `shapes-val`'s 100-107; everything a method part learns from (MLLM drawings, preference pairs) is drawn
# with seeds 1,000-99,999. Run folders go to results/runs/ (git-ignored), trainer work folders to $W, tables
# and figures to results/shapes/ (committed); trained parts are exported into the package and committed.
# Every stage resumes: rerunning it redoes only what is missing.
set -euo pipefail
export OMP_NUM_THREADS=1 IMGBENCH_OFFLINE=1 HF_HUB_OFFLINE=1 COLUMNS=${COLUMNS:-160}  # tables are not cut when teed
W=${W:-/work/shapes-train}          # trainer checkpoints and the MLLM's drawings (outside git)
OUT=results/runs/img-shapes          # pairs, caches and aligners (ignored)
R=results/shapes                     # committed tables and figures
B="--batch-size 64"
S="--scorer shapes-exact,shapes-clip"
# The shapes aligner: small (the world's tokens are 4 × 128, shapes-llava's states 128 wide); IUPO with the
# paper's λ = 1, k = 10, lr 1e-4, batch 8; guidance from shapes-llava asked the world's one question template.
ALIGNER="--model shapes --templates methods/img/shapes/templates.json --depth 2 --heads 4 --head-dim 32"
STEPS=${STEPS:-2000}
mkdir -p "$R" "$W"

timed() {  # timed NAME COMMAND...: run it and append its wall time to results/shapes/timing.txt
  local name=$1 start=$SECONDS; shift
  "$@"
  echo "$name: $((SECONDS - start)) s" | tee -a "$R/timing.txt"
}

llava() {  # shapes-llava retrained on drawings with seeds 1,000-7,087 (2 per train caption), then its accuracy
  [ -f "$W/llava-data.npz" ] || timed llava-data imgbench train shapes llava-data --out "$W/llava-data.npz"
  timed llava-train imgbench train shapes llava --workdir "$W/llava" --steps 1500 --generated "$W/llava-data.npz" \
    --export
  timed eval-llava imgbench train shapes eval-llava 2>&1 | tee "$R/eval-llava.txt"
}

llava_base() {  # the caption-only ablation: renders only (no diffusion noise), retrained so its manifest says so
  timed llava-base-train imgbench train shapes llava --base --workdir "$W/llava-base" --steps 1500 --export
}

pairs() {
  timed pairs results/shapes/pairs.sh
  echo "pairs: $(wc -l < "$OUT/pairs.jsonl")" | tee "$R/pairs-count.txt"
  pairs_by_skill
}

pairs_by_skill() {  # how many pairs and captions each skill gave
  python -c 'import collections, json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
skill = lambda r: r["prompt_id"].rsplit("-", 1)[0]
pairs, captions = collections.Counter(map(skill, rows)), {r["prompt_id"]: skill(r) for r in rows}
print("skill pairs captions")
for name, n in pairs.most_common():
    print(name, n, sum(1 for s in captions.values() if s == name))' "$OUT/pairs.jsonl" | tee "$R/pairs-by-skill.txt"
}

case "${1:-all}" in
  llava) llava ;; llava_base) llava_base ;; pairs) pairs ;;
  all) llava; pairs; llava_base ;;
  *) echo "usage: $0 [llava|llava_base|pairs|train|val|test|tables|all]" >&2; exit 2 ;;
esac
