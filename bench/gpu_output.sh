#!/usr/bin/env bash
# Output path speed (issue 23; BENCHMARKS.md "Output path"), on the lent GPU:
#   device run (carry .whl): bash bench/gpu_output.sh [bench output args]
# PART=bench (one call): IFNet, both upscalers (SPAN also without channels-last and compiled
# into a CUDA graph), Lanczos and the whole stage in both orders, for each upscaler; the
# GPU-marked output tests.
# PART=probes (one call): the whole node at 832x480 VACE from a 30 fps source without and
# with the output stage (60 fps, 1920x1080), the catalogue's RIFE and SPAN files written
# random at their real shapes.
# PART=all (default) does both, for a call with the time for it. BENCH_TIMEOUT (s) bounds
# each bench call.
set -uo pipefail
source bench/device_env.sh
PART="${PART:-all}"
if [ "$PART" != probes ]; then
  timeout "${BENCH_TIMEOUT:-240}" python3 -m livevace bench output --upscaler span \
    --out "$OUT" "$@" 2>&1 | tee -a "$OUT/output.log"
  timeout "${BENCH_TIMEOUT:-120}" python3 -m livevace bench output --upscaler compact \
    --no-variants --out "$OUT" "$@" 2>&1 | tee -a "$OUT/output.log"
  timeout 180 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_output_stage.py \
    tests/test_output_upscale.py tests/test_output_bench.py 2>&1 | tail -15 \
    | tee -a "$OUT/gpu_tests.log"
fi
if [ "$PART" != bench ]; then
  export LIVEVACE_MODELS_DIR="${LIVEVACE_MODELS_DIR:-/tmp/lv-models}"
  python3 -m livevace bench output --random-files "$LIVEVACE_MODELS_DIR"
  timeout 340 python3 -m livevace bench probe --weights random --compile --resolution 832x480 \
    --chunk 3 --probe-fps 30 --probe-seconds 20 --probe-settle 6 --output-fps 60 \
    --output-size 1920x1080 --with-baseline --out "$OUT" 2>&1 | grep -v USDT \
    | tee -a "$OUT/output.log"
fi
