#!/usr/bin/env bash
# Device run of scripts/device/probe-prefill.ts for one preset and several MatMulNBits accuracy levels (q4f16,
# static-KV graph): does the per-prefill floor depend on the kernel onnxruntime picks for the level? Bundle the
# builder CLI and the probe first, here (flags as in bench-worker.sh):
#   npx esbuild scripts/build-model.ts ... --outfile=.carry/build-model.mjs
#   npx esbuild scripts/device/probe-prefill.ts ... --outfile=.carry/probe-prefill.mjs
# Usage, from the repository root on the device: bash scripts/device/probe-prefill.sh <preset> <levels, e.g. 4,0>
#   [probe-prefill options]. Output: $OUT/probe-<preset>.log
set -u
preset=$1
levels=$2
shift 2
. scripts/device/runtime.sh
cp .carry/build-model.mjs .carry/probe-prefill.mjs /opt/rt/
set -o pipefail
cd /opt/rt
for level in ${levels//,/ }; do
  dir=/tmp/probe-models/$preset-q4f16-acc$level
  if [ ! -f "$dir/config.json" ]; then
    start=$(date +%s)
    node build-model.mjs --preset "$preset" --dtype q4f16 --accuracy-level "$level" --no-tokenizer --out "$dir" | tail -1
    echo "built in $(( $(date +%s) - start )) s"
  fi
  node probe-prefill.mjs --dir "$dir" --label "$preset accuracy_level=$level" "$@"
done 2>&1 | tee -a "$OUT/probe-$preset.log"
