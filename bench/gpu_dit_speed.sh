#!/usr/bin/env bash
# DiT speed sweep (issue 8; BENCHMARKS.md "Model core: speed work"), on the lent GPU:
#   device run (carry .whl): LIVEVACE_COMMIT=<hash> bash bench/gpu_dit_speed.sh [bench dit args]
# VARIANTS overrides the sweep; PROFILE= drops --profile; GPU_TESTS=0 skips the GPU-marked
# speed tests; BENCH_TIMEOUT (s) bounds the bench.
set -uo pipefail
source bench/device_env.sh
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
timeout "${BENCH_TIMEOUT:-420}" python3 -m livevace bench dit \
  --variants "${VARIANTS:-eager,compile,compile+graph,compile+graph+fp8}" \
  ${PROFILE---profile} --chunks 4 --out "$OUT" "$@" 2>&1 | grep -v USDT | tee -a "$OUT/dit_speed.log"
if [ "${GPU_TESTS:-1}" = 1 ]; then
  timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_wan_speed_compiled.py 2>&1 \
    | tail -15 | tee -a "$OUT/gpu_tests.log"
fi
