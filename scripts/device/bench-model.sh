#!/usr/bin/env bash
# Device run of scripts/bench-model.ts on the H200 (see docs/benchmarks.md): unpacks the carried Node
# runtime (.carry/runtime.tar.xz) and Vulkan loader (.gl/*.deb), measures device-to-device copy
# bandwidth with torch for the bounds, and runs the bundled benchmark (.carry/bench-model.mjs).
# Usage, from the repository root on the device: bash scripts/device/bench-model.sh <label> [bench-model options]
# Output: $OUT/<label>.log and $OUT/<label>.json.
# BUILD_IN_BACKGROUND="<options>" first starts a --build-only run with those options in the background
# (its log: $OUT/build.log); a later invocation with WAIT_FOR_BUILD=1 waits for it before benchmarking.
# Building is single-threaded JavaScript, so an 8B build can overlap a 1B benchmark.
# BENCH_TIMEOUT (seconds, default 540) or DEADLINE (epoch seconds) bound the benchmark run.
set -u
label=$1
shift
. scripts/device/runtime.sh
# ESM imports resolve from the importing file's folder: the bundle must sit beside the runtime's node_modules.
cp .carry/bench-model.mjs /opt/rt/
models=/tmp/bench-models
if [ -n "${BUILD_IN_BACKGROUND:-}" ]; then
  # shellcheck disable=SC2086 # the options are meant to split
  node /opt/rt/bench-model.mjs --build-only --models-dir $models $BUILD_IN_BACKGROUND >"$OUT/build.log" 2>&1 &
  echo $! >/tmp/bench-build.pid
fi
if [ "${WAIT_FOR_BUILD:-}" = 1 ] && [ -f /tmp/bench-build.pid ]; then
  while kill -0 "$(cat /tmp/bench-build.pid)" 2>/dev/null; do sleep 2; done
  tail -2 "$OUT/build.log"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
bw=$(python3 scripts/device/bandwidth.py)
echo "torch device-to-device copy: ${bw} GB/s (read + write)"
set -o pipefail
# DEADLINE (epoch seconds) caps this run so that several invocations fit in one device call.
limit=${BENCH_TIMEOUT:-540}
if [ -n "${DEADLINE:-}" ]; then limit=$((DEADLINE - $(date +%s))); fi
timeout "$limit" node /opt/rt/bench-model.mjs --bandwidth-gbs "$bw" --models-dir $models --json "$OUT/$label.json" "$@" 2>&1 | tee "$OUT/$label.log"
