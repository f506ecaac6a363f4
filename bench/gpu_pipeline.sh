#!/usr/bin/env bash
# Whole-pipeline suite (issue 8; BENCHMARKS.md "Pipeline: the whole node"), on the lent GPU:
#   device run (carry .whl): LIVEVACE_COMMIT=<hash> bash bench/gpu_pipeline.sh [bench pipeline args]
# REPEAT (default 3) runs every suite row that many times (the spread); FAST= drops --compile
# (the eager suite); EAGER=1 adds an eager suite run after the fast one (≈ 2–3 min more);
# GPU_TESTS=0 skips the GPU-marked test; BENCH_TIMEOUT (s) bounds each bench run.
set -uo pipefail
source bench/device_env.sh
suite() {
  timeout "${BENCH_TIMEOUT:-420}" python3 -m livevace bench pipeline --suite --repeat "${REPEAT:-3}" \
    --out "$OUT" "$@" 2>&1 | grep -v USDT | tee -a "$OUT/pipeline_suite.log"
}
suite ${FAST---compile} "$@"
if [ "${EAGER:-0}" = 1 ]; then
  REPEAT=1 suite "$@"
fi
if [ "${GPU_TESTS:-1}" = 1 ]; then  # the pipeline's GPU-marked tests (fast path, compiled encoder)
  timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_bench_pipeline_models.py \
    tests/test_pipeline_speed_gpu.py tests/test_pipeline_gpu.py 2>&1 | tail -15 | tee -a "$OUT/gpu_tests.log"
fi
