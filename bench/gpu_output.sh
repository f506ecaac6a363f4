#!/usr/bin/env bash
# Output path speed (issue 23; BENCHMARKS.md "Output path"), on the lent GPU:
#   device run (carry .whl): bash bench/gpu_output.sh [bench output args]
# Times IFNet, both upscalers, Lanczos and the whole stage in both orders, for each
# upscaler; then the GPU-marked output tests. BENCH_TIMEOUT (s) bounds each bench call.
set -uo pipefail
source bench/device_env.sh
for upscaler in span compact; do
  timeout "${BENCH_TIMEOUT:-240}" python3 -m livevace bench output --upscaler "$upscaler" \
    --out "$OUT" "$@" 2>&1 | tee -a "$OUT/output.log"
done
timeout 180 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_output_stage.py 2>&1 \
  | tail -15 | tee -a "$OUT/gpu_tests.log"
