#!/usr/bin/env bash
# Baseline GPU numbers for BENCHMARKS.md (model core, codecs, depth), run on the lent H100:
#   device run: bash bench/gpu_baseline.sh   (carry .whl: diffusers, tomli-w, python-osc wheels)
set -uo pipefail
source bench/device_env.sh
lv() { python3 -m livevace bench "$@" --out "$OUT" 2>&1 | tee -a "$OUT/gpu_baseline.log"; }
lv dit
lv dit --sdpa-backend cudnn
lv dit --sdpa-backend flash
lv annotators --device cuda --only depth
lv codecs --sizes 576x320,832x480 --repeat 20
