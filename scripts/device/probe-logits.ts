// Device probe: what a decode step of the static-KV decoder costs when the host chooses the token (sampled
// requests: the step downloads its logits and is fed the chosen token) against the device's own greedy token,
// with the decoder's split of host time (model run vs token readback). Bundle like probe-prefill.ts, then:
//   node probe-logits.mjs --dir <model folder> [--file model_q4f16.static-kv.onnx] [--device webgpu|cpu]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { StaticKvDecoder, type StepOptions } from "../../src/gpu/fast-decoder/index.js";
import { median } from "../bench-stats.js";

const { values } = parseArgs({ options: { dir: { type: "string" }, file: { type: "string" }, device: { type: "string" } } });
if (!values.dir) throw new Error("--dir: the model folder is required");
const device = values.device === "cpu" ? "cpu" : "webgpu";
const dec = await StaticKvDecoder.open({ modelPath: join(values.dir, "onnx", values.file ?? "model_q4f16.static-kv.onnx"), device, capacity: 4096 });
const prompt = Array.from({ length: 128 }, (_, i) => (i * 7919) % 120000);
const variants: [string, (last: number) => StepOptions][] = [
  ["device greedy token, no logits", () => ({})],
  ["device greedy token, logits downloaded", () => ({ logits: true })],
  ["host token fed, logits downloaded (sampled path)", (last) => ({ token: last, logits: true })],
];
console.log("| step | ms per step (median of 32) | model run ms | readback ms |");
console.log("| --- | --- | --- | --- |");
for (const [name, options] of variants) {
  for (let round = 0; round < 2; round++) {
    await dec.prefill(prompt);
    dec.resetStats();
    const times: number[] = [];
    let last = 13;
    for (let i = 0; i < 32; i++) {
      const t = performance.now();
      last = (await dec.step(options(last))).token;
      times.push(performance.now() - t);
    }
    if (round === 1) {
      const s = dec.stats;
      console.log(`| ${name} | ${median(times).toFixed(2)} | ${(s.runMs / s.runs).toFixed(2)} | ${(s.readbackMs / s.readbacks).toFixed(2)} |`);
    }
  }
}
await dec.dispose();
process.exit(0);
