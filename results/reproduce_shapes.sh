#!/usr/bin/env bash
# Every number in results/README.md comes from this script (from the repository root, on 2 CPU cores):
#   results/reproduce_shapes.sh [llava|llava_base|pairs|train|val|test|tables|dpo_grid|dpo_train|dpo_test|ip2p_train|ip2p_val|ip2p_fidelity|ip2p_test|ip2p_cycles|detector|detector_eval|sld_test|all]
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

timed() {  # timed NAME COMMAND...: run it and append its wall time to results/shapes/timing.txt (a rerun that
  local name=$1 start=$SECONDS; shift  # finds its work cached appends its own, shorter line: read the first one)
  "$@"
  echo "$name: $((SECONDS - start)) s ($(date -u +%FT%TZ))" | tee -a "$R/timing.txt"
}

llava() {  # shapes-llava retrained on drawings with seeds 1,000-7,087 (2 per train caption), then its accuracy
  [ -f "$W/llava-data.npz" ] || timed llava-data imgbench train shapes llava-data --out "$W/llava-data.npz"
  timed llava-train imgbench train shapes llava --workdir "$W/llava" --steps 1500 --generated "$W/llava-data.npz" \
    --export
  timed eval-llava imgbench train shapes eval-llava 2>&1 | grep "instruction accuracy" | tee "$R/eval-llava.txt"
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

train() {  # the aligner on those pairs, guided by the retrained shapes-llava; shipped beside the method
  timed aligner imgbench train img --pairs "$OUT/pairs.jsonl" $ALIGNER --steps "$STEPS" --no-progress \
    --cache "$OUT/cache-llava" --out "$OUT/aligner-main" --mllm shapes-llava --mllm-dtype fp32 --lam 1 --k 10
  cp "$OUT/aligner-main/aligner.safetensors" "$OUT/aligner-main/aligner.json" methods/img/shapes/
}

val() {  # every choice is made on shapes-val (seeds 100-107), never on the test split: here ip_scale
  timed val-base imgbench run --method base --task shapes-val $B $S
  timed val-sweep imgbench sweep --method img --task shapes-val $B $S --param ip_scale=0.2,0.4,0.8
  local default v against=""  # the point equal to the current default is the plain `shapes/img` row
  default=$(sed -n 's/^  ip_scale: \([0-9.]*\)$/\1/p' methods/img/shapes.yaml)
  for v in 0.2 0.4 0.8; do
    if [ "$v" = "$default" ]; then against="${against}shapes/img,"; else against="${against}shapes/img@ip_scale=$v,"; fi
  done
  imgbench compare --task shapes-val --baseline shapes/base --against "${against%,}" --scorer shapes-exact \
    --no-tags --json "$R/val-compare.json" | tee "$R/val-compare.txt"
  python results/shapes/choose_ip_scale.py | tee "$R/val-choice.txt"   # the best on val goes into shapes.yaml
}

CONTROLS="img-own-tokens img-zero-tokens img-random-tokens img-other-guidance reroll"
test_split() {  # the leaderboard: base, IMG (the shipped defaults) and every control, 240 prompts x seeds 0-7
  for M in base img $CONTROLS; do
    timed "test-$M" imgbench run --method "$M" --task shapes $B $S
  done
  local against="shapes/img" M
  for M in $CONTROLS; do against="$against,shapes/$M"; done
  for SC in shapes-exact shapes-clip; do
    imgbench compare --task shapes --baseline shapes/base --against "$against" --scorer $SC \
      --json "$R/compare-$SC.json" | tee "$R/compare-$SC.txt"
  done
  # what the aligned guidance adds beyond each control (IMG against the control as the baseline)
  for M in $CONTROLS; do
    imgbench compare --task shapes --baseline "shapes/$M" --against shapes/img --scorer shapes-exact --no-tags \
      --json "$R/img-vs-$M.json" | tee "$R/img-vs-$M.txt"
  done
  imgbench report --task shapes --runs "shapes/base,$against" --out "$R/report" --html-prompts 24
  imgbench agree --task shapes --scorers shapes-exact,shapes-clip --runs shapes/base,shapes/img \
    --json "$R/agree.json" | tee "$R/agree.txt"
  python results/shapes/cost.py | tee "$R/cost.md"
}

tables() {  # the controls figure and the failure reasons, from the runs above
  python results/shapes/controls_plot.py --out "$R/controls"
  python results/shapes/failure_reasons.py | tee "$R/failure-reasons.md"
}

# shapes-dpo (docs/dpo.md): Diffusion-DPO on exactly the aligner's pairs ($OUT/pairs.jsonl); β chosen on val.
D=$W/dpo                             # DPO work folders, held-out val pairs, the grid's UNets (outside git)
DPO="imgbench train dpo --model shapes --pairs $OUT/pairs.jsonl --lr 2.048e-5 --warmup 500 --threads 1"
DPO_BETAS="1000 5000"                # two points: the CPU budget of one session (2 cores)
dpo_grid() {  # each β to 1,000 steps (in parallel, a core each), judged on shapes-val: choose_beta.py's rule
  mkdir -p "$D" "$R/dpo"
  [ -f "$D/val-pairs.jsonl" ] || {  # held out: val captions at val seeds 100-107, every pair of seeds
    imgbench run --method base --task shapes-val --scorer shapes-exact --output "$D/runs"
    imgbench pairs "$(ls -d "$D"/runs/runs/shapes-val/shapes/base/*)" --scorer shapes-exact --mode all \
      --out "$D/val-pairs.jsonl"; }
  local b against=""
  for b in $DPO_BETAS; do
    timed "dpo-grid-$b" $DPO --beta "$b" --steps 1000 --workdir "$D/w-$b" --out "$D/out-$b-1000" &
  done
  wait
  imgbench run --method base --task shapes-val $B $S
  for b in $DPO_BETAS; do
    imgbench train dpo-eval --unet "$D/out-$b-1000" --pairs "$D/val-pairs.jsonl" --out "$R/dpo/val-reward-$b.json"
    imgbench run --method base --task shapes-val --model shapes-dpo --model-arg "unet_path=$D/out-$b-1000" $B $S \
      | tee "$D/val-run-$b.txt"
    against="$against,$(sed -n 's/^run \([0-9a-f]*\):.*/\1/p' "$D/val-run-$b.txt")"  # `run ID: ...`
  done
  imgbench compare --task shapes-val --baseline shapes/base --against "${against#,}" --scorer shapes-exact \
    --no-tags --json "$R/dpo/val-compare.json" | tee "$R/dpo/val-compare.txt"
  python results/shapes/dpo/choose_beta.py | tee "$R/dpo/val-choice.txt"
}

dpo_train() {  # the chosen β's run continued to 2,000 steps (same batches: the trainer resumes), then shipped
  local b; b=$(tail -1 "$R/dpo/val-choice.txt" | cut -d' ' -f2)
  timed "dpo-train-$b" $DPO --beta "$b" --steps 2000 --workdir "$D/w-$b" --out imgbench/worlds/shapes/weights-dpo
  imgbench train dpo-eval --unet imgbench/worlds/shapes/weights-dpo --pairs "$D/val-pairs.jsonl" \
    --out "$R/dpo/val-reward.json" | tee "$R/dpo/val-reward.txt"
}

dpo_test() {  # shapes-dpo and shapes-dpo + IMG (aligner and IP-Adapter unchanged) beside base and IMG
  local M SC
  for M in base img; do timed "test-dpo-$M" imgbench run --method "$M" --task shapes --model shapes-dpo $B $S; done
  for SC in shapes-exact shapes-clip; do
    imgbench compare --task shapes --baseline shapes/base --against shapes-dpo/base,shapes/img,shapes-dpo/img \
      --scorer $SC --json "$R/dpo/compare-$SC.json" | tee "$R/dpo/compare-$SC.txt"
  done
  imgbench compare --task shapes --baseline shapes-dpo/base --against shapes/img,shapes-dpo/img \
    --scorer shapes-exact --json "$R/dpo/vs-dpo.json" | tee "$R/dpo/vs-dpo.txt"
  python results/shapes/cost.py shapes-dpo | tee "$R/dpo/cost.md"
}

ip2p_train() {  # the editor shapes-ip2p from the shipped model, on the llava-data drawings (seeds 1,000-7,087) and
  # renders of train captions, in cosine cycles of 3,000 steps (2 threads; the shipped manifest holds the wall time)
  timed ip2p-train imgbench train shapes ip2p --workdir "$W/ip2p" --steps 3000 --anneal-steps 3000 \
    --generated "$W/llava-data.npz" --threads 2
  # a second cosine cycle from that run's checkpoint with three quarters drawings: on val drawings it lifted
  # intended edits 0.200 -> 0.571, unnamed kept 0.600 -> 0.829, "nothing" kept 0.70 -> 0.98 (guidance 1/1)
  timed ip2p-train-2 imgbench train shapes ip2p --workdir "$W/ip2p-long" --init-from "$W/ip2p" --steps 6000 \
    --anneal-from 3000 --anneal-steps 3000 --generated-share 0.75 --generated "$W/llava-data.npz" --threads 2 \
    --export "$W/ip2p-long/editor"
  ip2p_cycles  # more cycles; the val rule's choice is shipped (results/shapes/ip2p/editor-choice.txt)
  local chosen
  chosen=$(sed -n 's/^chosen: the \([0-9,]*\)-step editor$/\1/p' "$R/ip2p/editor-choice.txt" | tr -d ,)
  declare -A dirs=([6000]="$W/ip2p-long/editor" [9000]="$W/ip2p-3/editor" [12000]="$W/ip2p-4/editor"
                   [15000]="$W/ip2p-5/editor")
  rm -rf imgbench/worlds/shapes/weights/ip2p && cp -r "${dirs[$chosen]}" imgbench/worlds/shapes/weights/ip2p
}

ip2p_val() {  # the two guidance scales, chosen on val drawings (val captions, seeds 100-101) by edit fidelity
  mkdir -p "$R/ip2p"
  timed ip2p-val imgbench train shapes eval-ip2p --split val --seeds 100,101 --no-regeneration \
    --guidance 1,1.5,3 --image-guidance 1,1.5 --nothing-limit 50 --out "$R/ip2p/val-guidance.json"
  python results/shapes/ip2p/choose_guidance.py | tee "$R/ip2p/val-choice.txt"  # the rule; shapes.yaml holds it
}

ip2p_fidelity() {  # the acceptance measurement: val + test captions at the test seeds, beside regeneration
  timed ip2p-fidelity imgbench train shapes eval-ip2p --split val,test --nothing-limit 400 \
    --guidance "$(sed -n 's/^  guidance_scale: //p' methods/instruct_pix2pix/shapes.yaml)" \
    --image-guidance "$(sed -n 's/^  image_guidance_scale: //p' methods/instruct_pix2pix/shapes.yaml)" \
    --out "$R/ip2p/fidelity.json"
}

ip2p_test() {  # instruct-pix2pix on the test split (base images reused), beside base and IMG
  timed test-ip2p imgbench run --method instruct-pix2pix --task shapes $B $S
  for SC in shapes-exact shapes-clip; do
    imgbench compare --task shapes --baseline shapes/base --against shapes/img,shapes/instruct-pix2pix \
      --scorer $SC --json "$R/ip2p/compare-$SC.json" | tee "$R/ip2p/compare-$SC.txt"
  done
  imgbench compare --task shapes --baseline shapes/instruct-pix2pix --against shapes/img --scorer shapes-exact \
    --no-tags --json "$R/ip2p/img-vs-ip2p.json" | tee "$R/ip2p/img-vs-ip2p.txt"
  imgbench report --task shapes --runs shapes/base,shapes/img,shapes/instruct-pix2pix --out "$R/ip2p/report" \
    --html-prompts 24  # index.html: initial image, instruction and edited image side by side
  python results/shapes/cost.py | tee "$R/ip2p/cost.md"
}

ip2p_val_editor() {  # ip2p_val_editor STEPS DIR: an editor's fidelity on val drawings (seeds 100-107, guidance 1/1)
  timed "val-editor-$1" imgbench train shapes eval-ip2p --editor "$2" --split val \
    --seeds 100,101,102,103,104,105,106,107 --no-regeneration --guidance 1 --image-guidance 1 --nothing-limit 200 \
    --out "$R/ip2p/val-editor-$1.json"
}

ip2p_cycle() {  # ip2p_cycle N FROM STEPS: cosine cycle N from FROM's checkpoint to STEPS, then its val check.
  # Measured: cycle 3 (to 9,000) 3,287 s beside other work
  timed "ip2p-train-$1" imgbench train shapes ip2p --workdir "$W/ip2p-$1" --init-from "$2" --steps "$3" \
    --anneal-from $(($3 - 3000)) --anneal-steps 3000 --generated-share 0.75 --generated "$W/llava-data.npz" \
    --threads 2 --export "$W/ip2p-$1/editor"
  ip2p_val_editor "$3" "$W/ip2p-$1/editor"
}

ip2p_cycles() {  # further cycles and the val rule, committed first (results/shapes/ip2p/choose_editor.py), that
  # picks the editor ip2p_train ships
  ip2p_val_editor 6000 "$W/ip2p-long/editor"
  ip2p_cycle 3 "$W/ip2p-long" 9000
  ip2p_cycle 4 "$W/ip2p-3" 12000  # 1,810 s alone
  ip2p_cycle 5 "$W/ip2p-4" 15000
  python results/shapes/ip2p/choose_editor.py | tee "$R/ip2p/editor-choice.txt"
}

detector() {  # shapes-detector (SLD's detector + SAM) on the llava-data drawings (seeds 1,000-7,087) and renders of
  # train captions (seeds 20,000-26,087), exported into the package. Measured: 592 s wall (358 s of training,
  # 0.24-0.27 s/step on one thread; the rest loading and labelling 12,176 images on a core shared with evals)
  timed detector-train imgbench train shapes detector --workdir "$W/detector" --steps 1500 --anneal-steps 1500 \
    --generated "$W/llava-data.npz" --threads 1 --export
}

detector_eval() {  # P/R against the checker on the model's drawings of val + test captions at the test seeds 0-7
  # (2,688 images). The test images are the `test` stage's base run and the val ones a base run at seeds 0-7 in
  # its own folder (the val runs keep seeds 100-107 only); the model draws from prompt and seed alone, so they
  # are the drawings (20 of 20 redrawn byte-identical). Measured: the val run 415 s, the eval 21 s; without
  # --images-from it draws all 2,688 (≈ 10 min on 2 cores)
  mkdir -p "$R/sld"
  timed detector-val-drawings imgbench run --method base --task shapes-val --seeds 0-7 $B --scorer shapes-exact \
    --output "$W/detector-drawings"
  timed detector-eval imgbench train shapes eval-detector --split val,test --out "$R/sld/detector.json" \
    --images-from "$(ls -d results/runs/shapes/shapes/base/* | head -1),$(ls -d "$W"/detector-drawings/runs/shapes-val/shapes/base/* | head -1)"
}

sld_test() {  # SLD on the test split (base images reused): the learned shapes-detector, and the oracle-detector
  # upper bound (the checker's reading), beside base, IMG and Instruct-Pix2Pix; each operation kind's success
  timed test-sld imgbench run --method sld --task shapes $B $S
  timed test-sld-oracle imgbench run --method sld --task shapes --method-arg detector=oracle $B $S
  for SC in shapes-exact shapes-clip; do
    imgbench compare --task shapes --baseline shapes/base \
      --against shapes/img,shapes/instruct-pix2pix,shapes/sld,shapes/sld@detector=oracle \
      --scorer $SC --json "$R/sld/compare-$SC.json" | tee "$R/sld/compare-$SC.txt"
  done
  imgbench compare --task shapes --baseline shapes/sld --against shapes/img,shapes/instruct-pix2pix \
    --scorer shapes-exact --no-tags --json "$R/sld/sld-vs-editors.json" | tee "$R/sld/sld-vs-editors.txt"
  python results/shapes/sld/operation_success.py results/runs/shapes/shapes/sld/* | tee "$R/sld/operations.md"
  imgbench report --task shapes --runs shapes/base,shapes/sld --out "$R/sld/report" --html-prompts 24
  python results/shapes/cost.py | tee "$R/sld/cost.md"
}

case "${1:-all}" in
  llava) llava ;; llava_base) llava_base ;; pairs) pairs ;; train) train ;; val) val ;; test) test_split ;;
  tables) tables ;; dpo_grid) dpo_grid ;; dpo_train) dpo_train ;; dpo_test) dpo_test ;;
  ip2p_train) ip2p_train ;; ip2p_val) ip2p_val ;; ip2p_fidelity) ip2p_fidelity ;; ip2p_test) ip2p_test ;;
  ip2p_cycles) ip2p_cycles ;; detector) detector ;; detector_eval) detector_eval ;; sld_test) sld_test ;;
  all) llava; pairs; train; val; test_split; tables; llava_base; dpo_grid; dpo_train; dpo_test; ip2p_train; ip2p_val
       ip2p_fidelity; ip2p_test; detector; detector_eval; sld_test ;;
  *) echo "usage: $0 [llava|llava_base|pairs|train|val|test|tables|dpo_grid|dpo_train|dpo_test|ip2p_train|ip2p_val|ip2p_fidelity|ip2p_test|ip2p_cycles|detector|detector_eval|sld_test|all]" >&2; exit 2 ;;
esac
