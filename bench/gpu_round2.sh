#!/usr/bin/env bash
# Speed, round two (issue 21; BENCHMARKS.md), on the lent GPU, one call for the whole table:
#   device run (carry .whl): LIVEVACE_COMMIT=<hash> bash bench/gpu_round2.sh
# 1. the DiT alone: bf16 against FP8, with the two attention output projections in bf16 (the
#    default; VARIANTS=…+fp8all for without: a second call);
# 2. the Wan VAE decoder against its convolution floor (eager, compiled, convolutions alone);
# 3. the suite at 832x480: the round-two targets (FP8 rows, Wan VAE decode);
# 4. FP8's quality: latents and decoded frames against bf16 over 64 chunks;
# 5. the GPU-marked tests of the new paths;
# 6. the suite at 576x320: 4 and 2 steps, time to first frame, glass to glass from a 60 and a
#    30 fps source;
# 7. peak memory at 832x480 VACE with the block weights stored in FP8 (a 16 GB card);
# 8. the VACE rows with the cache writes skipping the VACE blocks (vace_refinement_scale 0),
#    and glass to glass with 1-latent chunks at 2 steps.
# Each part fits one device call (10 min): STEPS picks them (default all, in order); REPEAT
# (default 2) the suite's runs per row; BENCH_TIMEOUT (s) bounds each part.
set -uo pipefail
source bench/device_env.sh
STEPS="${STEPS:-1 2 3 4 5 6 7 8}"
T="${BENCH_TIMEOUT:-540}"
run() { timeout "$T" python3 -m livevace bench "$@" --out "$OUT" 2>&1 | grep -v USDT; }
for step in $STEPS; do
  case $step in
    1) run dit --resolution 832x480 --resolution 576x320 --chunks 4 --repeat 10 \
         --variants "${VARIANTS:-compile+graph+fa4,compile+graph+fa4+fp8}" \
         | tee -a "$OUT/round2_dit.log" ;;
    2) run vae_decoder --sizes 832x480,576x320 --top 12 | tee -a "$OUT/round2_vae_decoder.log" ;;
    3) run pipeline --suite --compile --repeat "${REPEAT:-2}" --deadline $((T - 90)) \
         --rows t2v-large,t2v-large-fp8,t2v-large-wan,vace-large,vace-large-fp8 \
         | tee -a "$OUT/round2_suite.log" ;;
    4) run fp8_quality --compile --chunks 64 --resolution 832x480 --mode vace \
         | tee -a "$OUT/round2_fp8_quality.log" ;;
    5) timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu \
         tests/test_wan_speed_fp8.py tests/test_codec_vae_compiled.py \
         tests/test_pipeline_precision.py tests/test_pipeline_speed_gpu.py 2>&1 \
         | tail -15 | tee -a "$OUT/gpu_tests.log" ;;
    6) run pipeline --suite --compile --repeat "${REPEAT:-2}" --deadline $((T - 90)) \
         --rows vace-small,vace-small-2,g2g-small,g2g-small-30 \
         | tee -a "$OUT/round2_suite_small.log" ;;
    7) run pipeline --suite --compile --repeat 1 --weights-dtype fp8 --rows vace-large-fp8 \
         | tee -a "$OUT/round2_suite_fp8_weights.log" ;;
    8) run pipeline --suite --compile --repeat "${REPEAT:-2}" --deadline $((T - 90)) \
         --rows vace-small,vace-small-r0,vace-small-2,vace-small-2-r0,vace-large-r0,g2g-small-2 \
         | tee -a "$OUT/round2_suite_r0.log" ;;
  esac
done
