#!/usr/bin/env bash
# GPU smoke: tiny SD 1.5 / SDXL / FLUX models on CUDA in fp16, images/s (offline; no hub).
# Usage: benchmarks/gpu_smoke.sh [--size 64 --batch 8 --steps 4 --repeats 3]
set -euo pipefail
cd "$(dirname "$0")/.."
export IMGBENCH_OFFLINE=1 HF_HUB_OFFLINE=1
exec "${PYTHON:-python}" benchmarks/gpu_smoke.py "$@"
