# Sourced by the bench/gpu_*.sh scripts on the lent GPU machine: installs the carried wheels
# (.whl: packages its image lacks) into /tmp/site, puts livevace and them on PYTHONPATH, and
# names the results folder. `source bench/device_env.sh` also serves an ad-hoc command line.
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD:/tmp/site"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
nvidia-smi -L
