// Device probe: what a prefill of S tokens costs on top of C cached tokens, against a fresh prefill of C + S and
// of S alone, on the static-KV decoder over WebGPU (docs/benchmarks.md, "10-turn chat with and without prefix
// reuse"), and what one queued decode step costs after C + S tokens. Each figure is the median of 5, including
// the token readback (the device has finished).
// Bundle it like the worker (see bench-worker.sh) to .carry/probe-prefill.mjs, build a model folder with the
// static-KV graph on the device, then:
//   node probe-prefill.mjs <folder> [--file model_q4f16.static-kv.onnx] [--cached 1024,4096] [--suffix 16,64,128]
import { join } from "node:path";
import { z } from "zod";
import { StaticKvDecoder } from "../../src/gpu/fast-decoder/index.js";
import { median } from "../bench-stats.js";
import { parseCli } from "../cli.js";

const HELP = `Usage: node probe-prefill.mjs --dir <model folder> [--file <static-KV graph>] [--cached <list>] [--suffix <list>] [--label <text>] [--device webgpu|cpu]\n`;
const intList = (flag: string) =>
  z
    .string()
    .transform((s) => s.split(",").map(Number))
    .refine((l) => l.every((n) => Number.isInteger(n) && n >= 0), `${flag}: expected comma-separated non-negative integers`);
const opts = parseCli(
  { dir: { type: "string" }, file: { type: "string" }, cached: { type: "string" }, suffix: { type: "string" }, label: { type: "string" }, device: { type: "string" } },
  z.object({
    dir: z.string({ error: "--dir: the model folder is required" }),
    file: z.string().default("model_q4f16.static-kv.onnx"),
    cached: intList("--cached").default([0, 1024, 4096]),
    suffix: intList("--suffix").default([16, 64, 128]),
    label: z.string().default(""),
    device: z.enum(["webgpu", "cpu"], "--device: expected webgpu or cpu").default("webgpu"),
  }),
  HELP,
);

const dec = await StaticKvDecoder.open({ modelPath: join(opts.dir, "onnx", opts.file), device: opts.device, capacity: 8192 });
const toks = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ((i + seed) * 7919) % 120000);
const time = async (f: () => Promise<unknown>) => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};
await dec.prefill(toks(64, 1));
await dec.prefill(toks(8, 2), 64);
await dec.steps(16);
console.log(`${opts.label} ${opts.file}`);
console.log("| cached C | suffix S | prefill S on top of C ms | fresh prefill of C+S ms | ms per queued decode step after C+S |");
console.log("| --- | --- | --- | --- | --- |");
for (const C of opts.cached) {
  for (const S of opts.suffix) {
    if (S === 0) continue;
    const onTop: number[] = [], fresh: number[] = [], step: number[] = [];
    for (let r = 0; r < 5; r++) {
      if (C > 0) {
        await dec.prefill(toks(C, 3));
        onTop.push(await time(() => dec.prefill(toks(S, 5 + r), C)));
      }
      fresh.push(await time(() => dec.prefill(toks(C + S, 7 + r))));
      step.push((await time(() => dec.steps(16))) / 16);
    }
    const onTopText = C > 0 ? median(onTop).toFixed(1) : "-";
    console.log(`| ${C} | ${S} | ${onTopText} | ${median(fresh).toFixed(1)} | ${median(step).toFixed(2)} |`);
  }
}
await dec.dispose();
process.exit(0);
