#!/usr/bin/env bash
# Scale-out (issue 24; BENCHMARKS.md "Scale-out"), on a lent multi-GPU machine (kinds
# nvidia-h100-x2 / nvidia-h100-x4):
#   device run (carry .whl): GPUS=2 bash bench/gpu_scale.sh
# GPUS (default 2) ranks; ROWS picks rows (default all): dit, vace, t2v, latency, node.
# BENCH_TIMEOUT (s) bounds each command. NVLink multicast stays off in every rank (the node
# sets it; exported here too for anything started by hand).
set -uo pipefail
source bench/device_env.sh
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
GPUS="${GPUS:-2}"
ROWS="${ROWS:-dit vace t2v latency node}"
bench() {
  timeout "${BENCH_TIMEOUT:-500}" python3 -m livevace "$@" --out "$OUT" 2>&1 \
    | grep -v USDT | tee -a "$OUT/scale_${GPUS}gpus.log"
}
for row in $ROWS; do
  case "$row" in
    dit)  # the DiT alone, VACE control, 832x480, 3-latent chunks, 4 steps: every split vs one GPU
      bench bench scale --gpus "$GPUS" --splits one,ulysses,vace --vace --size 832x480 \
        --compile default --chunks 16 ;;
    vace)  # row 1: 832x480 VACE depth, 4 steps, TAE decoder, whole node (fps, chunk latency)
      for split in ulysses vace; do
        bench bench pipeline --gpus "$GPUS" --split "$split" --compile --weights random \
          --resolution 832x480 --mode vace-control --control depth --decoder tae --chunks 24
      done ;;
    t2v)  # row 2: 832x480 t2v, 4 steps, Wan VAE decoder
      bench bench pipeline --gpus "$GPUS" --split ulysses --compile --weights random \
        --resolution 832x480 --mode t2v --decoder wan --chunks 24 ;;
    latency)  # row 4: 576x320 VACE, 1-latent chunks, glass to glass p50
      for split in ulysses vace; do
        bench bench probe --gpus "$GPUS" --split "$split" --compile --weights random \
          --resolution 576x320 --mode vace-control --chunk 1
      done ;;
    node)  # the same rows on one GPU, same machine, for the ratios
      bench bench pipeline --compile --weights random --resolution 832x480 --mode vace-control \
        --control depth --decoder tae --chunks 24
      bench bench pipeline --compile --weights random --resolution 832x480 --mode t2v \
        --decoder wan --chunks 24
      bench bench probe --compile --weights random --resolution 576x320 --mode vace-control \
        --chunk 1 ;;
  esac
done
