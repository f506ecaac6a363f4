#!/usr/bin/env bash
# The pending device rows of issues 19, 20 and 23 in three device calls (kind nvidia-h100-x1,
# carry .whl), made back to back so the machine and its compile cache stay warm:
#   device run: bash bench/gpu_session.sh A     # issue 23: output rows, the node with and without it
#   device run: bash bench/gpu_session.sh B     # issues 20 + 19: LoRA rows, the 1.3B zoo beside LongLive
#   device run: bash bench/gpu_session.sh C     # issues 19 + 20: Krea 14B rows, its LoRA changes
# Each part runs its steps in order of need while LIMIT seconds (default 550) allow, each
# bounded by its own timeout; every JSON and log lands in one archive, $OUT/results.tgz (a
# call brings back 8 files at most), and the log also goes to the call's output.
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
}
export LIVEVACE_MODELS_DIR=/tmp/lv-models
case "${1:?part A, B or C}" in
  A)
    step 20 python3 -m livevace bench output --random-files "$LIVEVACE_MODELS_DIR"
    step 90 python3 -m livevace bench output --upscaler span --out "$OUT"
    step 60 python3 -m livevace bench output --upscaler compact --repeat 10 --out "$OUT"
    step 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_output_stage.py
    for output in "" "--output-fps 60 --output-size 1920x1080"; do
      # shellcheck disable=SC2086
      step 200 python3 -m livevace bench probe --weights random --compile --resolution 832x480 --chunk 3 \
        --probe-fps 30 --probe-seconds 20 --probe-settle 6 $output --out "$OUT"
    done ;;
  B)
    step 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_lora_live.py \
      tests/test_cache_ema_sink.py tests/test_cache_memory_bank.py tests/test_cache_rebuild.py \
      tests/test_cache_stream_batch.py
    step 220 python3 -m livevace bench lora --model longlive --weights random --compile --repeat 2 --out "$OUT"
    for model in reward-forcing self-forcing memflow streamdiffusionv2; do
      step 130 python3 -m livevace bench pipeline --model "$model" --weights random --compile \
        --resolution 576x320 --chunks 4 --out "$OUT"
    done
    step 150 python3 -m livevace bench probe --model streamdiffusionv2 --weights random --compile \
      --resolution 576x320 --probe-fps 30 --probe-seconds 10 --probe-settle 4 --out "$OUT" ;;
  C)
    step 200 python3 -m livevace bench pipeline --model krea-realtime --weights random --weights-dtype fp8 \
      --compile --resolution 832x480 --chunks 3 --out "$OUT"
    step 200 python3 -m livevace bench pipeline --model krea-realtime --weights random --compile \
      --resolution 832x480 --chunks 3 --out "$OUT"
    step 150 python3 -m livevace bench lora --model krea-realtime --weights random --weights-dtype fp8 \
      --no-pipeline --ranks 32 --changes 3 --out "$OUT"
    step 150 python3 -m livevace bench lora --model krea-realtime --weights random --weights-dtype fp8 \
      --no-pipeline --ranks 32 --changes 3 --base-on-gpu --out "$OUT" ;;
esac
tar czf "$RESULTS/results.tgz" -C "$OUT" .
echo "== $(date +%T) done; archive $(du -h "$RESULTS/results.tgz" | cut -f1)"
