#!/usr/bin/env bash
# Every number in results/README.md comes from this script (from the repository root, on 2 CPU cores):
#   results/reproduce_shapes.sh [pairs|train|val|test|ablate|ablate_text|ablate_train|tables|all]
# Run folders go to results/runs/ (git-ignored); tables and figures to results/shapes/ (committed).
set -euo pipefail
export OMP_NUM_THREADS=1 IMGBENCH_OFFLINE=1 HF_HUB_OFFLINE=1 COLUMNS=${COLUMNS:-160}  # tables are not cut when teed
OUT=results/runs/img-shapes          # pairs, caches and aligners (ignored)
R=results/shapes                     # committed tables and figures
B="--batch-size 64"
S="--scorer shapes-exact,shapes-clip"
# The shapes aligner: small (the world's tokens are 4 × 128, shapes-llava's states 128 wide); IUPO with the
# paper's λ = 1, k = 10, lr 1e-4, batch 8; guidance from shapes-llava asked the world's one question template.
ALIGNER="--model shapes --templates methods/img/shapes/templates.json --depth 2 --heads 4 --head-dim 32"
STEPS=${STEPS:-2000}
mkdir -p "$R"

train_aligner() {  # train_aligner NAME GUIDANCE_ARGS... ; extra objective flags after the guidance args
  local name=$1; shift
  imgbench train img --pairs "$OUT/pairs.jsonl" $ALIGNER --steps "$STEPS" --no-progress \
    --cache "$OUT/cache-${CACHE:-llava}" --out "$OUT/aligner-$name" "$@"
}

pairs() {
  local start=$SECONDS
  results/shapes/pairs.sh
  echo "pairs: $((SECONDS - start)) s, $(wc -l < "$OUT/pairs.jsonl") pairs" | tee "$R/timing-pairs.txt"
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

train() {
  local start=$SECONDS
  train_aligner main --mllm shapes-llava --mllm-dtype fp32 --lam 1 --k 10
  echo "cache + train: $((SECONDS - start)) s" | tee "$R/timing-train.txt"
  cp "$OUT/aligner-main/aligner.safetensors" "$OUT/aligner-main/aligner.json" methods/img/shapes/
}

val() {  # every choice made on shapes-val (seeds 0, 1), never on the test split: ip_scale 0.2 (methods/img/shapes.yaml)
  imgbench run --method base --task shapes-val $B $S
  imgbench sweep --method img --task shapes-val $B $S --param ip_scale=0.2,0.4,0.8
  imgbench compare --task shapes-val --baseline shapes/base \
    --against shapes/img,shapes/img@ip_scale=0.4,shapes/img@ip_scale=0.8 --scorer shapes-exact --no-tags \
    | tee "$R/val-compare.txt"
}

test_split() {  # the leaderboard: base vs IMG (the shipped defaults), 240 prompts × seeds 0-3
  imgbench run --method base --task shapes $B $S
  imgbench run --method img --task shapes $B $S
  for SC in shapes-exact shapes-clip; do
    imgbench compare --task shapes --baseline shapes/base --against shapes/img --scorer $SC \
      --json "$R/compare-$SC.json" | tee "$R/compare-$SC.txt"
  done
  imgbench report --task shapes --runs shapes/base,shapes/img --out "$R/report" --html-prompts 24
  imgbench agree --task shapes --scorers shapes-exact,shapes-clip --runs shapes/base,shapes/img \
    --json "$R/agree.json" | tee "$R/agree.txt"
}

A="--method img --task shapes --seeds 0 $B $S"  # ablations: all 240 test prompts, seed 0
plots() {  # plots PARAM...: one figure set and table per swept parameter
  for P in "$@"; do
    imgbench plot --task shapes --method img --param "$P" --baseline shapes/base --out "$R/plots-$P" \
      | tee "$R/plots-$P.txt"
  done
}

ablate() {  # inference-time ablations of the shipped aligner (paper Table 5a, Fig. 7, §4.1's passes and IP scale)
  imgbench sweep $A --param ip_scale=0.1,0.2,0.4,0.8
  imgbench sweep $A --param guidance=none,mllm,finetuned-mllm   # mllm = shapes-llava-base, the caption-only model
  imgbench sweep $A --param passes=1,2,3
  imgbench sweep $A --param rounds=1,2
}

ablate_text() {  # Table 5a's text-embedding row needs its own aligner, trained on the text encoder's states
  CACHE=text train_aligner text --guidance text --lam 1 --k 10
  imgbench run $A --method-arg guidance=text --method-arg aligner=$OUT/aligner-text/aligner.safetensors
}

ablate_train() {  # training-time ablations (Table 5b λ, 5c loss terms, the ‖·‖² reduction), same cache and steps
  train_aligner lam0 --mllm shapes-llava --mllm-dtype fp32 --lam 0 --k 10        # λ = 0: L_base only
  train_aligner lam0.5 --mllm shapes-llava --mllm-dtype fp32 --lam 0.5 --k 10
  train_aligner lam2 --mllm shapes-llava --mllm-dtype fp32 --lam 2 --k 10
  train_aligner dpo --mllm shapes-llava --mllm-dtype fp32 --preference dpo --lam 1 --k 10
  train_aligner spin --mllm shapes-llava --mllm-dtype fp32 --preference spin --lam 1 --k 10
  train_aligner sum --mllm shapes-llava --mllm-dtype fp32 --reduction sum --lam 1 --k 10
  local paths=""
  for N in lam0 lam0.5 lam2 dpo spin sum; do paths="$paths$OUT/aligner-$N/aligner.safetensors,"; done
  imgbench sweep $A --param aligner=${paths}shapes/aligner.safetensors   # the shipped one (λ 1, dpo+spin, mean)
}

tables() {  # ablation tables: each family against base over the items they share (seed 0), Holm within the family
  local AL=$OUT/aligner T=shapes/img@aligner
  fam() {
    local name=$1; shift
    imgbench compare --task shapes --baseline shapes/base --against "$1" --shared --no-tags $S \
      --json "$R/ablation-$name.json" | tee "$R/ablation-$name.txt"
  }
  fam ip_scale shapes/img@ip_scale=0.1,shapes/img,shapes/img@ip_scale=0.4,shapes/img@ip_scale=0.8
  fam guidance shapes/img@guidance=none,shapes/img@guidance=mllm,$T=$AL-text/aligner.safetensors,guidance=text,shapes/img
  fam passes shapes/img@passes=1,shapes/img@passes=2,shapes/img
  fam rounds shapes/img@rounds=2,shapes/img
  fam training $T=$AL-lam0/aligner.safetensors,$T=$AL-lam0.5/aligner.safetensors,shapes/img,$T=$AL-lam2/aligner.safetensors,$T=$AL-dpo/aligner.safetensors,$T=$AL-spin/aligner.safetensors,$T=$AL-sum/aligner.safetensors
  # is the gain the aligner's, or just redrawing through the image's own tokens? (the "No guidance" row as baseline)
  imgbench compare --task shapes --baseline shapes/img@guidance=none --against shapes/img --shared --no-tags $S \
    | tee "$R/ablation-aligned-vs-none.txt"
  python results/shapes/failure_reasons.py | tee "$R/failure-reasons.md"
  python results/shapes/ablation_table.py | tee "$R/ablation-table.md"
  plots ip_scale guidance passes rounds aligner
}

case "${1:-all}" in
  pairs) pairs ;; train) train ;; val) val ;; test) test_split ;; ablate) ablate ;; ablate_text) ablate_text ;;
  ablate_train) ablate_train ;; tables) tables ;;
  all) pairs; train; val; test_split; ablate; ablate_text; ablate_train; tables ;;
  *) echo "usage: $0 [pairs|train|val|test|ablate|ablate_text|ablate_train|tables|all]" >&2; exit 2 ;;
esac
