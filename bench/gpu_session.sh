#!/usr/bin/env bash
# Device rows of issues 19, 21 and 23, in device calls made back to back (kind nvidia-h100-x1,
# carry .whl) so the machine and its compile cache stay warm. Still to run, in order of need:
#   device run: bash bench/gpu_session.sh O   # issue 23: the GPU-marked output tests (-x -v
#                                             # -rf: one failed unnamed at 95e8a8a), then the
#                                             # node pair again (the pacer's fix: 60 fps out?)
#   device run: bash bench/gpu_session.sh T   # the other GPU-marked tests, one call, -v -rf
#                                             # (fp8 first: at 95e8a8a its first GPU test failed)
#   device run: bash bench/gpu_session.sh P   # issue 21: where a new pipeline's first calls
#                                             # spend the time to first frame (576x320), then
#                                             # the GPU tests of the first chunk's depth graph
#                                             # and of cache writes without VACE
#   device run: bash bench/gpu_session.sh F   # issue 19: MemFlow beside LongLive again (the
#                                             # candidate taken once per chunk)
#   device run: bash bench/gpu_session.sh C   # peaks by phase: LongLive, SDV2 (Krea's is G's)
#   then STEPS=8, 2 … 5 and 7 of bench/gpu_round2.sh (issue 21; 1 and 6 measured).
# Measured (BENCHMARKS.md, 2026-12-08 00:11–00:24 UTC, code 667a887): G (MemFlow after the
# bank fix beside LongLive, Krea's warm-up by phase), D's node pair (the prepared stage).
# Measured (BENCHMARKS.md, 2026-12-07 22:02–22:18 UTC): D (SPAN folded and compiled, the
# node pair with the in-line stage), G, gpu_round2.sh STEPS=6.
# Measured (BENCHMARKS.md, 2026-12-07 16:39–16:50 UTC), to reproduce those rows:
#   device run: bash bench/gpu_session.sh B   # issue 19: Krea's 832x480 text-to-video row with
#                                             # FP8 compute and where its time goes,
#                                             # StreamDiffusionV2's glass to glass (VACE with
#                                             # frames annotated as captured; video-to-video) and
#                                             # its video-to-video speed
#   device run: bash bench/gpu_session.sh E   # issues 19, 20, 21: where MemFlow's time goes,
#                                             # StreamDiffusionV2 14B, the 14B LoRA write-back,
#                                             # the DiT in bf16 and FP8 side by side
# Each part runs its steps in order of need while LIMIT seconds (default 550) allow, each
# bounded by its own timeout; every JSON and log lands in one archive, $OUT/results.tgz (a
# call brings back 8 files at most), remade after each step, and the log also goes to the
# call's output.
set -uo pipefail
RESULTS="$OUT"
export OUT=/tmp/results
source bench/device_env.sh
START=$(date +%s)
LIMIT="${LIMIT:-550}"
step() {  # step SECONDS COMMAND...: run it if time is left, bounded by SECONDS
  local budget=$1 left
  shift
  left=$((LIMIT - $(date +%s) + START - 20))
  if [ "$left" -lt 45 ]; then echo "== skipped (time): $*" | tee -a "$OUT/session.log"; return; fi
  [ "$budget" -gt "$left" ] && budget=$left
  echo "== $(date +%T) [${budget} s] $*" | tee -a "$OUT/session.log"
  timeout "$budget" "$@" 2>&1 | grep -v USDT | tee -a "$OUT/session.log"
  echo "== $(date +%T) rc ${PIPESTATUS[0]}" | tee -a "$OUT/session.log"
  pack
}
pack() {  # the archive as of now: a call cut off by the device's budget still brings it back
  tar czf "$RESULTS/results.tgz.part" --exclude="*.pickle" -C "$OUT" . \
    && mv "$RESULTS/results.tgz.part" "$RESULTS/results.tgz"
}
export LIVEVACE_MODELS_DIR=/tmp/lv-models
case "${1:?part A to G, O, P or T}" in
  A)
    step 540 env PART=bench bash bench/gpu_output.sh ;;
  P)
    step 200 python3 -m livevace bench pipeline --weights random --compile --resolution 576x320 \
      --chunks 4 --profile --out "$OUT"
    step 200 python3 -m pytest -v -rf --tb=short -p no:cacheprovider -m gpu \
      tests/test_annotators_depth.py tests/test_pipeline_speed_gpu.py ;;
  T)
    step 540 python3 -m pytest -v -rf --tb=short -p no:cacheprovider -m gpu --durations=10 \
      tests/test_wan_speed_fp8.py tests/test_wan_fp8_weights.py tests/test_lora_live.py \
      tests/test_cache_memory_bank.py tests/test_cache_rebuild.py tests/test_cache_stream_batch.py \
      tests/test_cache_ema_sink.py tests/test_bench_memory.py tests/test_bench_pipeline_zoo.py ;;
  D)
    step 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_output_stage.py \
      tests/test_wan_speed_fp8.py tests/test_wan_fp8_weights.py tests/test_lora_live.py \
      tests/test_output_upscale.py tests/test_output_bench.py
    step 240 python3 -m livevace bench output --upscaler span --repeat 10 --out "$OUT"
    step 370 env PART=probes bash bench/gpu_output.sh ;;
  G)
    for model in longlive memflow; do
      step 130 python3 -m livevace bench pipeline --model "$model" --weights random --compile \
        --resolution 576x320 --chunks 16 --out "$OUT"
    done
    step 220 python3 -m livevace bench pipeline --model krea-realtime --weights random \
      --weights-dtype fp8 --precision fp8 --compile --resolution 832x480 --mode t2v --chunks 2 \
      --memory-history --out "$OUT" ;;
  O)
    step 170 python3 -m pytest -x -v -rf --tb=short -p no:cacheprovider -m gpu \
      tests/test_output_stage.py tests/test_output_upscale.py tests/test_output_bench.py
    step 370 env PART=probes bash bench/gpu_output.sh ;;
  F)
    for model in longlive memflow longlive memflow; do
      step 130 python3 -m livevace bench pipeline --model "$model" --weights random --compile \
        --resolution 576x320 --chunks 16 --out "$OUT"
    done ;;
  B)
    step 190 python3 -m livevace bench pipeline --model krea-realtime --weights random \
      --weights-dtype fp8 --precision fp8 --compile --resolution 832x480 \
      --mode t2v --chunks 4 --profile --out "$OUT"
    step 130 python3 -m livevace bench probe --model streamdiffusionv2 --weights random \
      --compile --resolution 576x320 --probe-fps 30 --probe-seconds 10 --probe-settle 4 \
      --out "$OUT"
    step 110 python3 -m livevace bench probe --model streamdiffusionv2 --weights random \
      --compile --resolution 576x320 --mode v2v --probe-fps 30 --probe-seconds 10 \
      --probe-settle 4 --out "$OUT"
    step 110 python3 -m livevace bench pipeline --model streamdiffusionv2 --weights random \
      --compile --resolution 576x320 --mode v2v --lookahead 0 --chunks 8 --out "$OUT" ;;
  E)
    step 120 python3 -m livevace bench pipeline --model memflow --weights random --compile \
      --resolution 576x320 --chunks 4 --profile --out "$OUT"
    step 150 python3 -m livevace bench pipeline --model streamdiffusionv2-14b --weights random \
      --weights-dtype fp8 --compile --resolution 576x320 --chunks 4 --out "$OUT"
    step 100 python3 -m livevace bench lora --model krea-realtime --weights random \
      --weights-dtype fp8 --no-pipeline --ranks 32 --changes 3 --out "$OUT"
    step 240 env STEPS=1 bash bench/gpu_round2.sh ;;
  C)
    step 200 python3 -m livevace bench pipeline --model krea-realtime --weights random \
      --weights-dtype fp8 --precision fp8 --compile --resolution 832x480 --mode t2v --chunks 2 \
      --memory-history --out "$OUT"
    step 120 python3 -m livevace bench pipeline --weights random --compile --resolution 576x320 \
      --chunks 4 --memory-history --out "$OUT"
    step 150 python3 -m livevace bench pipeline --model streamdiffusionv2 --weights random \
      --compile --resolution 576x320 --chunks 4 --memory-history --out "$OUT" ;;
esac
pack  # memory snapshots (*.pickle) stay behind: too big to bring back
echo "== $(date +%T) done; archive $(du -h "$RESULTS/results.tgz" | cut -f1)"
