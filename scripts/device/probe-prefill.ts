// Device probe: what a prefill of S tokens costs on top of C cached tokens, against a fresh prefill of C + S and
// of S alone, on the static-KV decoder over WebGPU (docs/benchmarks.md, "10-turn chat with and without prefix
// reuse"). Each figure is the median of 5, including the token readback (the device has finished).
// Bundle it like the worker (see bench-worker.sh) to .carry/probe-prefill.mjs, build a model folder with the
// static-KV graph on the device (bench-worker.sh <label> --preset llama-3.2-1b --device webgpu --dtype q4f16
// --static-kv --sections none), then: node probe-prefill.mjs <folder> model_q4f16.static-kv.onnx
import { join } from "node:path";
import { StaticKvDecoder } from "../../src/gpu/fast-decoder/index.js";
import { median } from "../bench-stats.js";
const dir = process.argv[2]!;
const file = process.argv[3] ?? "model_q4f16.static-kv.onnx";
const dec = await StaticKvDecoder.open({ modelPath: join(dir, "onnx", file), device: "webgpu", capacity: 8192 });
const toks = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ((i + seed) * 7919) % 120000);
const time = async (f: () => Promise<unknown>) => { const t = performance.now(); await f(); return performance.now() - t; };
await dec.prefill(toks(64, 1)); await dec.prefill(toks(8, 2), 64);
console.log("| cached C | suffix S | prefill S on top of C ms | fresh prefill of C+S ms | fresh prefill of S ms |");
for (const C of [512, 1024, 2048, 4096]) {
  for (const S of [16, 64, 128]) {
    const onTop: number[] = [], fresh: number[] = [], small: number[] = [];
    for (let r = 0; r < 5; r++) {
      await dec.prefill(toks(C, 3));
      onTop.push(await time(() => dec.prefill(toks(S, 5 + r), C)));
      fresh.push(await time(() => dec.prefill(toks(C + S, 7 + r))));
      small.push(await time(() => dec.prefill(toks(S, 9 + r))));
    }
    console.log(`| ${C} | ${S} | ${median(onTop).toFixed(1)} | ${median(fresh).toFixed(1)} | ${median(small).toFixed(1)} |`);
  }
}
await dec.dispose();
process.exit(0);
