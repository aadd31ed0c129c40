// Model benchmark: builds random-weight models of real Llama shapes with the project's ONNX builder
// and measures them with transformers.js: time to first token and decode tokens/s at several
// context lengths, load time and memory, each next to the memory-bandwidth bound of the device
// (bytes read per token over the bandwidth measured in the same run) and to the figures of the
// onnxruntime-genai builder's output in shared/docs/runtime-notes.md section 8 (same GPU kind).
//
//   H200 (WebGPU):  npx tsx scripts/bench-model.ts --json build/bench-model.json
//   local (CPU):    npx tsx scripts/bench-model.ts --device cpu --preset tiny
import { BaseStreamer, AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { z } from "zod";
import { PRESETS, headDim, isPresetName, type ModelArgs } from "../src/model/config.js";
import { ExternalDataWriter } from "../src/model/onnx/external-data.js";
import { GraphBuilder } from "../src/model/onnx/graph-builder.js";
import {
  GRAPH_FLAVOURS,
  MODEL_DTYPES,
  buildModelFolder,
  decodeModel,
  ioDataType,
  onnxFileName,
  DataType,
  type GraphFlavour,
  type ModelDtype,
} from "../src/model/onnx/index.js";
import { encodeModel } from "../src/model/onnx/onnx-proto.js";
import { randomWeights } from "../src/model/weights.js";

const HELP = `Usage: npx tsx scripts/bench-model.ts [options]

  --device <d>         webgpu (default) or cpu
  --preset <list>      model shapes (default webgpu: llama-3.2-1b,llama-3.1-8b; cpu: tiny)
  --dtype <list>       default webgpu: q4f16,fp16; cpu: q4,fp32
  --flavour <f>        gpu (default) or standard
  --contexts <list>    prompt lengths for TTFT and decode (default webgpu: 128,1024,8192; cpu: 128,1024)
  --new-tokens <n>     decode tokens per measurement (default 64)
  --repeats <n>        TTFT runs per context, median reported (default 3)
  --models-dir <dir>   where models are built and reused (default build/bench-models)
  --rebuild            rebuild models even if present
  --json <file>        also write the results as JSON
  --bandwidth-gbs <n>  memory bandwidth for the bounds (default: measured in-process, see below; H200 HBM3e: 4800)
  --help
`;

// onnxruntime-genai builder output on one H200 over WebGPU, runtime-notes section 8 (lower end of
// each measured range): decode tok/s and TTFT ms by "preset dtype context".
const NOTES_FIGURES: Record<string, { decode?: number; ttft?: number }> = {
  "llama-3.2-1b q4f16 128": { decode: 130, ttft: 82 },
  "llama-3.2-1b q4f16 1024": { decode: 109, ttft: 533 },
  "llama-3.2-1b fp16 128": { decode: 64, ttft: 106 },
  "llama-3.2-1b fp16 1024": { decode: 63, ttft: 553 },
  "llama-3.1-8b q4f16 128": { decode: 75, ttft: 132 },
  "llama-3.1-8b q4f16 1024": { decode: 34, ttft: 530 },
};

const list = <T extends string>(values: readonly T[], field: string) =>
  z
    .string()
    .transform((s) => s.split(",").map((v) => v.trim()))
    .refine((l) => l.every((v) => (values as readonly string[]).includes(v)), `${field}: expected a comma-separated list of ${values.join(", ")}`)
    .transform((l) => l as T[]);
const count = (field: string) =>
  z
    .string()
    .regex(/^\d+$/, `${field}: expected a positive integer`)
    .transform(Number)
    .refine((n) => n > 0, `${field}: expected a positive integer`);

const cliSchema = z.object({
  device: z.enum(["webgpu", "cpu"], "--device: expected webgpu or cpu").default("webgpu"),
  preset: list(Object.keys(PRESETS), "--preset").optional(),
  dtype: list(MODEL_DTYPES, "--dtype").optional(),
  flavour: z.enum(GRAPH_FLAVOURS as [GraphFlavour, ...GraphFlavour[]], "--flavour: expected gpu or standard").default("gpu"),
  contexts: z
    .string()
    .transform((s) => s.split(",").map((v) => Number(v.trim())))
    .refine((l) => l.every((n) => Number.isInteger(n) && n > 0), "--contexts: expected a comma-separated list of positive integers")
    .optional(),
  "new-tokens": count("--new-tokens").default(64),
  repeats: count("--repeats").default(3),
  "models-dir": z.string().min(1).default("build/bench-models"),
  rebuild: z.boolean().default(false),
  json: z.string().min(1).optional(),
  "bandwidth-gbs": z
    .string()
    .regex(/^\d+(\.\d+)?$/, "--bandwidth-gbs: expected a number of GB/s")
    .transform(Number)
    .refine((n) => n > 0, "--bandwidth-gbs: expected a positive number")
    .optional(),
});

function parseCli() {
  const { values } = parseArgs({
    strict: true,
    options: {
      device: { type: "string" },
      preset: { type: "string" },
      dtype: { type: "string" },
      flavour: { type: "string" },
      contexts: { type: "string" },
      "new-tokens": { type: "string" },
      repeats: { type: "string" },
      "models-dir": { type: "string" },
      rebuild: { type: "boolean" },
      json: { type: "string" },
      "bandwidth-gbs": { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const parsed = cliSchema.safeParse(values);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join("\n"));
  const o = parsed.data;
  const gpu = o.device === "webgpu";
  return {
    ...o,
    presets: o.preset ?? (gpu ? ["llama-3.2-1b", "llama-3.1-8b"] : ["tiny"]),
    dtypes: o.dtype ?? ((gpu ? ["q4f16", "fp16"] : ["q4", "fp32"]) as ModelDtype[]),
    contexts: o.contexts ?? (gpu ? [128, 1024, 8192] : [128, 1024]),
  };
}

// ---------------------------------------------------------------------------------------------
// Device facts

/** GPU memory in use (MiB) from nvidia-smi, or null where there is none. */
function gpuMemoryMiB(): number | null {
  try {
    const out = execFileSync("nvidia-smi", ["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"], { encoding: "utf8" });
    return Number(out.trim().split("\n")[0]);
  } catch {
    return null;
  }
}

function deviceName(device: string): string {
  if (device === "cpu") {
    const model = readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
    return `${model} (CPU EP)`;
  }
  try {
    return execFileSync("nvidia-smi", ["--query-gpu=name,driver_version", "--format=csv,noheader", "-i", "0"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown GPU";
  }
}

/**
 * Streaming-read bandwidth as the runtime achieves it on the benchmarked execution provider: one run
 * reduces 8 resident initializers (the same bytes loaded 8 times: 8 GiB fp16 on WebGPU, 1 GiB fp32
 * on CPU) row by row, so per-run overhead is amortised. On the H200 this gives about 600 GB/s,
 * well below the HBM's 4.8 TB/s, because it is limited by onnxruntime's WebGPU reduction kernel:
 * pass --bandwidth-gbs to compute the bounds from the hardware's figure instead.
 */
async function measureBandwidth(device: "webgpu" | "cpu", dir: string): Promise<number> {
  const copies = 8;
  const dataType = device === "webgpu" ? DataType.FLOAT16 : DataType.FLOAT;
  const elementBytes = dataType === DataType.FLOAT16 ? 2 : 4;
  const cols = 4096;
  const rows = ((device === "webgpu" ? 1024 : 128) * 2 ** 20) / elementBytes / cols;
  const dataFile = `bandwidth-probe-${device}.onnx_data`;
  const file = join(dir, `bandwidth-probe-${device}.onnx`);
  if (!existsSync(file) || !existsSync(join(dir, dataFile))) {
    mkdirSync(dir, { recursive: true });
    const writer = new ExternalDataWriter(join(dir, dataFile), dataFile);
    // Non-zero data: GPUs may compress runs of zeros.
    const values = new Uint8Array(rows * cols * elementBytes);
    for (let i = 0; i < values.length; i++) values[i] = ((i * 2654435761) >>> 24) & 0x3b;
    const at = writer.append([values]);
    writer.close();
    const g = new GraphBuilder();
    // The axes are an input so that constant folding cannot precompute the reductions.
    const axes = g.input("axes", DataType.INT64, [1]);
    const sums = Array.from({ length: copies }, (_, k) => g.op("ReduceSum", [g.external(`X${k}`, dataType, [rows, cols]), axes], { keepdims: 0 }));
    g.node("Sum", sums, { outputs: ["Z"] });
    g.output("Z", dataType, [rows]);
    const model = g.toModel({ graphName: "probe", opsets: { "": 21 }, producerName: "bench-model", producerVersion: "1", locate: () => writer.entries(at) });
    writeFileSync(file, encodeModel(model));
  }
  const session = await ort.InferenceSession.create(file, { executionProviders: [device], logSeverityLevel: 3 });
  const axes = new ort.Tensor("int64", BigInt64Array.of(1n), [1]);
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    const start = performance.now();
    const out = await session.run({ axes }); // Z comes back to the CPU: the time covers the GPU work
    times.push(performance.now() - start);
    out.Z.dispose();
  }
  await session.release();
  return (copies * rows * cols * elementBytes) / (median(times.slice(3)) / 1000);
}

// ---------------------------------------------------------------------------------------------
// Models

function modelDir(modelsDir: string, preset: string, flavour: GraphFlavour): string {
  return resolve(modelsDir, `${preset}-${flavour}-s1`);
}

/** Builds (or reuses) the folder with every benchmarked dtype. */
async function ensureModel(modelsDir: string, preset: string, flavour: GraphFlavour, dtypes: ModelDtype[], rebuild: boolean): Promise<string> {
  const dir = modelDir(modelsDir, preset, flavour);
  const stampFile = join(dir, "bench-build.json");
  const stamp = existsSync(stampFile) ? (JSON.parse(readFileSync(stampFile, "utf8")) as { dtypes: ModelDtype[] }) : null;
  if (!rebuild && stamp && dtypes.every((d) => stamp.dtypes.includes(d))) return dir;
  rmSync(dir, { recursive: true, force: true });
  const started = performance.now();
  let last = 0;
  await buildModelFolder({
    outDir: dir,
    weights: randomWeights(PRESETS[preset as keyof typeof PRESETS], 1),
    flavour,
    dtypes,
    tokenizerDir: null, // the benchmark feeds token ids
    onProgress: (p) => {
      if (performance.now() - last < 10_000 && p.done < p.total) return;
      last = performance.now();
      console.error(`  building ${preset}: ${p.stage} ${p.done}/${p.total}, ${((last - started) / 1000).toFixed(0)} s`);
    },
  });
  writeFileSync(stampFile, JSON.stringify({ preset, flavour, seed: 1, dtypes }));
  return dir;
}

/**
 * Bytes a decode step must read: every external initializer except the rope caches (a row each)
 * and tables that are only gathered from (the untied embedding: one row per token).
 */
function weightBytesPerToken(dir: string, dtype: ModelDtype): { perToken: number; total: number } {
  const model = decodeModel(readFileSync(join(dir, "onnx", onnxFileName(dtype))));
  const consumers = new Map<string, string[]>();
  for (const node of model.graph.node) for (const input of node.input) consumers.set(input, [...(consumers.get(input) ?? []), node.opType]);
  let perToken = 0;
  let total = 0;
  for (const t of model.graph.initializer) {
    if (t.dataLocation !== 1) continue;
    const length = Number(t.externalData!.find((e) => e.key === "length")!.value);
    total += length;
    if (t.name === "cos_cache" || t.name === "sin_cache") continue;
    const ops = consumers.get(t.name) ?? [];
    if (ops.length > 0 && ops.every((op) => op === "Gather" || op === "GatherBlockQuantized")) continue;
    perToken += length;
  }
  return { perToken, total };
}

/** KV cache bytes read per decode step at a context length. */
function kvBytes(args: ModelArgs, dtype: ModelDtype, context: number): number {
  const elementBytes = ioDataType(dtype) === DataType.FLOAT16 ? 2 : 4;
  return 2 * args.n_layers * args.n_kv_heads * headDim(args) * context * elementBytes;
}

// ---------------------------------------------------------------------------------------------
// Measurements

class TimingStreamer extends BaseStreamer {
  readonly times: number[] = [];
  private sawPrompt = false;
  override put(_value: bigint[][]): void {
    if (!this.sawPrompt) {
      this.sawPrompt = true; // the first put is the prompt
      return;
    }
    this.times.push(performance.now());
  }
  override end(): void {}
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function randomPrompt(length: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return 1000 + (s % 100_000);
  });
}

type Model = Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>;

/** Records how long each onnxruntime `session.run` of the decoder takes (transformers.js calls it once per step). */
function timeSessionRuns(model: Model): number[] {
  const session = (model as unknown as { sessions: Record<string, { run: (...a: unknown[]) => Promise<unknown> }> }).sessions.model;
  const run = session.run.bind(session);
  const durations: number[] = [];
  session.run = async (...a: unknown[]) => {
    const start = performance.now();
    try {
      return await run(...a);
    } finally {
      durations.push(performance.now() - start);
    }
  };
  return durations;
}

/** Generates `newTokens` tokens (EOS suppressed) and returns the streamed tokens' timestamps. */
async function timedGenerate(model: Model, prompt: number[], newTokens: number): Promise<{ start: number; times: number[] }> {
  const streamer = new TimingStreamer();
  const start = performance.now();
  await model.generate({
    input_ids: new Tensor("int64", BigInt64Array.from(prompt, BigInt), [1, prompt.length]),
    attention_mask: new Tensor("int64", new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]),
    max_new_tokens: newTokens,
    min_new_tokens: newTokens,
    do_sample: false,
    streamer,
  } as never);
  return { start, times: streamer.times };
}

interface ContextResult {
  context: number;
  ttftMs: number;
  /** One read of the weights at the measured bandwidth (prefill is compute-bound; this is a floor). */
  ttftBoundMs: number;
  decodeTokS: number;
  /** Bandwidth over (weights + KV cache) bytes per token. */
  decodeBoundTokS: number;
  /** Mean onnxruntime session.run time per decode step; the rest of a step is transformers.js in JS. */
  ortMsPerStep: number;
  gpuMemoryMiB: number | null;
  notes: { decode?: number; ttft?: number } | null;
}

interface ModelResult {
  preset: string;
  dtype: ModelDtype;
  flavour: GraphFlavour;
  fileBytes: number;
  weightBytesPerToken: number;
  loadSeconds: number;
  gpuMemoryAfterLoadMiB: number | null;
  rssAfterLoadMiB: number;
  contexts: ContextResult[];
}

async function benchModel(
  o: ReturnType<typeof parseCli>,
  dir: string,
  preset: string,
  dtype: ModelDtype,
  bandwidth: number,
  baselineGpuMiB: number | null,
): Promise<ModelResult> {
  const args = PRESETS[preset as keyof typeof PRESETS];
  const bytes = weightBytesPerToken(dir, dtype);
  const loadStart = performance.now();
  const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, device: o.device, dtype });
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const gpuAfterLoad = gpuMemoryMiB();
  const runDurations = timeSessionRuns(model);
  const result: ModelResult = {
    preset,
    dtype,
    flavour: o.flavour,
    fileBytes: bytes.total,
    weightBytesPerToken: bytes.perToken,
    loadSeconds,
    gpuMemoryAfterLoadMiB: gpuAfterLoad === null || baselineGpuMiB === null ? null : gpuAfterLoad - baselineGpuMiB,
    rssAfterLoadMiB: process.memoryUsage.rss() / 2 ** 20,
    contexts: [],
  };
  try {
    for (const context of o.contexts) {
      if (context + o["new-tokens"] > args.max_seq_len) {
        console.error(`  skipping context ${context}: ${preset} accepts ${args.max_seq_len} positions`);
        continue;
      }
      const prompt = randomPrompt(context, context);
      await timedGenerate(model, prompt, 2); // compiles this shape's kernels
      const ttfts: number[] = [];
      for (let r = 0; r < o.repeats; r++) {
        const run = await timedGenerate(model, prompt, 1);
        ttfts.push(run.times[0] - run.start);
      }
      runDurations.length = 0;
      const decode = await timedGenerate(model, prompt, o["new-tokens"]);
      const decodeRuns = runDurations.slice(1); // the first run is the prefill
      const span = (decode.times.at(-1)! - decode.times[0]) / 1000;
      const gpu = gpuMemoryMiB();
      result.contexts.push({
        context,
        ttftMs: median(ttfts),
        ttftBoundMs: (bytes.perToken / bandwidth) * 1000,
        decodeTokS: (decode.times.length - 1) / span,
        decodeBoundTokS: bandwidth / (bytes.perToken + kvBytes(args, dtype, context + o["new-tokens"] / 2)),
        ortMsPerStep: decodeRuns.reduce((a, b) => a + b, 0) / decodeRuns.length,
        gpuMemoryMiB: gpu === null || baselineGpuMiB === null ? null : gpu - baselineGpuMiB,
        notes: o.device === "webgpu" && o.flavour === "gpu" ? (NOTES_FIGURES[`${preset} ${dtype} ${context}`] ?? null) : null,
      });
      const c = result.contexts.at(-1)!;
      console.error(`  ${preset} ${dtype} context ${context}: TTFT ${c.ttftMs.toFixed(1)} ms, decode ${c.decodeTokS.toFixed(1)} tok/s`);
    }
  } finally {
    await model.dispose();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

function pct(x: number): string {
  return `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(rows[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.slice(1).map(line)].join("\n");
}

function report(results: ModelResult[]): string {
  const rows = [
    ["model", "dtype", "ctx", "TTFT ms", "bound ms", "% of bound", "notes ms", "vs notes", "decode tok/s", "ms/step", "ORT ms", "bound tok/s", "% of bound", "notes tok/s", "vs notes", "GPU MiB"],
  ];
  for (const r of results) {
    for (const c of r.contexts) {
      rows.push([
        r.preset,
        r.dtype,
        String(c.context),
        c.ttftMs.toFixed(1),
        c.ttftBoundMs.toFixed(2),
        pct(c.ttftBoundMs / c.ttftMs),
        c.notes?.ttft ? String(c.notes.ttft) : "-",
        c.notes?.ttft ? `${(c.notes.ttft / c.ttftMs).toFixed(2)}x` : "-",
        c.decodeTokS.toFixed(1),
        (1000 / c.decodeTokS).toFixed(2),
        c.ortMsPerStep.toFixed(2),
        c.decodeBoundTokS.toFixed(0),
        pct(c.decodeTokS / c.decodeBoundTokS),
        c.notes?.decode ? String(c.notes.decode) : "-",
        c.notes?.decode ? `${(c.decodeTokS / c.notes.decode).toFixed(2)}x` : "-",
        c.gpuMemoryMiB === null ? "-" : String(c.gpuMemoryMiB),
      ]);
    }
  }
  return table(rows);
}

async function main(): Promise<void> {
  const o = parseCli();
  for (const p of o.presets) if (!isPresetName(p)) throw new Error(`--preset: unknown preset ${p}`);
  env.allowRemoteModels = false;
  const device = deviceName(o.device);
  console.error(`device: ${device}`);
  const measured = await measureBandwidth(o.device, resolve(o["models-dir"]));
  const bandwidth = o["bandwidth-gbs"] !== undefined ? o["bandwidth-gbs"] * 1e9 : measured;
  const bandwidthNote = `bandwidth for the bounds ${(bandwidth / 1e9).toFixed(0)} GB/s (${o["bandwidth-gbs"] !== undefined ? "given" : "measured"}; in-process streaming-read probe ${(measured / 1e9).toFixed(0)} GB/s)`;
  console.error(bandwidthNote);
  const results: ModelResult[] = [];
  for (const preset of o.presets) {
    const dir = await ensureModel(o["models-dir"], preset, o.flavour, o.dtypes, o.rebuild);
    for (const dtype of o.dtypes) results.push(await benchModel(o, dir, preset, dtype, bandwidth, gpuMemoryMiB()));
  }
  console.log(`\n${device}; ${o.flavour} flavour; ${bandwidthNote}; ${o["new-tokens"]} decode tokens, TTFT median of ${o.repeats}\n`);
  console.log(report(results));
  console.log(
    "\nbound ms: one read of the per-token weight bytes at the bandwidth; bound tok/s: bandwidth / (weight bytes + KV cache bytes) per token;" +
      "\nms/step: wall time per decode step; ORT ms: onnxruntime session.run per step (the rest is transformers.js on the JS thread);" +
      "\nnotes: onnxruntime-genai builder output on one H200 (runtime-notes section 8); vs notes > 1x is better.",
  );
  for (const r of results) {
    console.log(
      `${r.preset} ${r.dtype}: ${(r.fileBytes / 2 ** 30).toFixed(2)} GiB of weights, ${(r.weightBytesPerToken / 2 ** 30).toFixed(2)} GiB read per token, load ${r.loadSeconds.toFixed(1)} s, ` +
        `GPU memory after load ${r.gpuMemoryAfterLoadMiB ?? "-"} MiB, process RSS ${r.rssAfterLoadMiB.toFixed(0)} MiB`,
    );
  }
  if (o.json) {
    mkdirSync(dirname(resolve(o.json)), { recursive: true });
    writeFileSync(o.json, JSON.stringify({ device, bandwidthBytesPerSecond: bandwidth, probeBandwidthBytesPerSecond: measured, options: o, results }, null, 2));
    console.log(`\nwrote ${o.json}`);
  }
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
