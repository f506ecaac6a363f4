#!/usr/bin/env bash
# Zoo models (issue 19; BENCHMARKS.md "Zoo models"), on the lent GPU, in two calls (a call's
# 10 minutes and 8 files back):
#   device run (carry .whl): bash bench/gpu_zoo.sh                  # the 1.3B models
#   device run (carry .whl): MODELS=14b bash bench/gpu_zoo.sh       # the 14B models
# One `livevace bench pipeline --model NAME --weights random --compile` per entry of MODELS
# (NAME or NAME:fp8 for FP8 weight storage; "14b": Krea with FP8 and bf16 weights,
# StreamDiffusionV2 14B with FP8), at RESOLUTION (default 576x320); further arguments go to
# every run. Each run's JSON goes to $OUT, its rows to $OUT/zoo.log; BENCH_TIMEOUT (s) bounds
# each run.
set -uo pipefail
source bench/device_env.sh
models="${MODELS:-longlive self-forcing reward-forcing memflow streamdiffusionv2}"
[ "$models" = 14b ] && models="krea-realtime:fp8 krea-realtime streamdiffusionv2-14b:fp8"
for entry in $models; do
  name="${entry%%:*}"
  dtype=bf16
  [ "$entry" != "$name" ] && dtype="${entry#*:}"
  timeout "${BENCH_TIMEOUT:-280}" python3 -m livevace bench pipeline --model "$name" \
    --weights random --weights-dtype "$dtype" --compile --resolution "${RESOLUTION:-576x320}" \
    --out "$OUT" "$@" 2>&1 | grep -v USDT | tee -a "$OUT/zoo.log" | grep -E "^$name, |Error"
done
