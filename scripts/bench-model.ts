// Model benchmark: builds random-weight models of real Llama shapes with the project's ONNX builder
// and measures them with each engine: transformers.js generate() on the transformers.js graph (the
// peer), and the project's static-KV decoder (src/gpu/fast-decoder) on the static-KV graph built
// from the same weights, reading each token back or queueing steps. Per engine: time to first token and
// decode tokens/s at several context lengths, host time split, memory, each next to the
// memory-bandwidth bound of the device (bytes read per token over the bandwidth) and to the figures
// of the onnxruntime-genai builder's output in shared/docs/runtime-notes.md section 8 (same GPU
// kind). It also checks the static-KV graph's logits and greedy tokens against the transformers.js
// graph on the same device, and with --profile prints onnxruntime's per-operator profile.
//
//   H200 (WebGPU):  npx tsx scripts/bench-model.ts --json build/bench-model.json
//   local (CPU):    npx tsx scripts/bench-model.ts --device cpu --preset tiny
import { BaseStreamer, AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
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
import { StaticKvDecoder } from "../src/gpu/fast-decoder/static-kv-decoder.js";
import { staticKvFileName } from "../src/model/onnx/index.js";
import { parseCli, positiveIntFlag } from "./cli.js";
import { median } from "./bench-stats.js";
import { OrtDecoder, argmax, relativeError } from "./ort-decoder.js";

const HELP = `Usage: npx tsx scripts/bench-model.ts [options]

  --device <d>         webgpu (default) or cpu
  --preset <list>      model shapes (default webgpu: llama-3.2-1b,llama-3.1-8b; cpu: tiny)
  --dtype <list>       default webgpu: q4f16,fp16; cpu: q4,fp32
  --flavour <f>        gpu (default) or standard
  --engines <list>     transformers, static-kv, static-kv-queued, static-kv-queued-noval (default: all; the static-kv
                       engines need the gpu flavour; -noval runs the WebGPU EP with validationMode=disabled)
  --readback-every <n> static-kv-queued: steps queued per token readback (default 16)
  --profile            also profile 32 decode steps at the second context with onnxruntime (per-operator time)
  --probe-capture      check whether onnxruntime-node lets a session enable WebGPU graph capture
  --build-only         build the models and exit
  --contexts <list>    prompt lengths for TTFT and decode (default webgpu: 128,1024,2048,8192; cpu: 128,1024)
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

const ENGINES = ["transformers", "static-kv", "static-kv-queued", "static-kv-queued-noval"] as const;
type Engine = (typeof ENGINES)[number];

const cliSchema = z.object({
  device: z.enum(["webgpu", "cpu"], "--device: expected webgpu or cpu").default("webgpu"),
  preset: list(Object.keys(PRESETS), "--preset").optional(),
  dtype: list(MODEL_DTYPES, "--dtype").optional(),
  flavour: z.enum(GRAPH_FLAVOURS as [GraphFlavour, ...GraphFlavour[]], "--flavour: expected gpu or standard").default("gpu"),
  engines: list(ENGINES, "--engines").optional(),
  "readback-every": positiveIntFlag("--readback-every").default(16),
  profile: z.boolean().default(false),
  "probe-capture": z.boolean().default(false),
  "build-only": z.boolean().default(false),
  contexts: z
    .string()
    .transform((s) => s.split(",").map((v) => Number(v.trim())))
    .refine((l) => l.every((n) => Number.isInteger(n) && n > 0), "--contexts: expected a comma-separated list of positive integers")
    .optional(),
  "new-tokens": positiveIntFlag("--new-tokens").default(64),
  repeats: positiveIntFlag("--repeats").default(3),
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

function engines(requested: Engine[] | undefined, gpu: boolean, flavour: GraphFlavour): Engine[] {
  const list = requested ?? (gpu ? [...ENGINES] : (["transformers", "static-kv", "static-kv-queued"] as Engine[]));
  if (flavour !== "gpu" && list.some((e) => e !== "transformers")) throw new Error("--engines: the static-kv engines need --flavour gpu");
  if (!gpu && list.includes("static-kv-queued-noval")) throw new Error("--engines: static-kv-queued-noval needs --device webgpu (it sets a WebGPU EP option)");
  return list;
}

function parseOptions() {
  const o = parseCli(
    {
      device: { type: "string" },
      preset: { type: "string" },
      dtype: { type: "string" },
      flavour: { type: "string" },
      engines: { type: "string" },
      "readback-every": { type: "string" },
      profile: { type: "boolean" },
      "probe-capture": { type: "boolean" },
      "build-only": { type: "boolean" },
      contexts: { type: "string" },
      "new-tokens": { type: "string" },
      repeats: { type: "string" },
      "models-dir": { type: "string" },
      rebuild: { type: "boolean" },
      json: { type: "string" },
      "bandwidth-gbs": { type: "string" },
    },
    cliSchema,
    HELP,
  );
  const gpu = o.device === "webgpu";
  return {
    ...o,
    presets: o.preset ?? (gpu ? ["llama-3.2-1b", "llama-3.1-8b"] : ["tiny"]),
    dtypes: o.dtype ?? ((gpu ? ["q4f16", "fp16"] : ["q4", "fp32"]) as ModelDtype[]),
    contexts: o.contexts ?? (gpu ? [128, 1024, 2048, 8192] : [128, 1024]),
    engineList: engines(o.engines, gpu, o.flavour),
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

/** Bumped when the builder's graphs change, so older model folders are rebuilt. */
const GRAPHS_VERSION = 2;

/** Builds (or reuses) the folder with every benchmarked dtype. */
async function ensureModel(modelsDir: string, preset: string, flavour: GraphFlavour, dtypes: ModelDtype[], rebuild: boolean): Promise<string> {
  const dir = modelDir(modelsDir, preset, flavour);
  const stampFile = join(dir, "bench-build.json");
  const staticKv = flavour === "gpu";
  const stamp = existsSync(stampFile) ? (JSON.parse(readFileSync(stampFile, "utf8")) as { dtypes: ModelDtype[]; staticKv?: boolean; graphs?: number }) : null;
  const current = stamp && dtypes.every((d) => stamp.dtypes.includes(d)) && (stamp.staticKv ?? false) === staticKv && stamp.graphs === GRAPHS_VERSION;
  if (!rebuild && current) return dir;
  rmSync(dir, { recursive: true, force: true });
  const started = performance.now();
  let last = 0;
  await buildModelFolder({
    outDir: dir,
    weights: randomWeights(PRESETS[preset as keyof typeof PRESETS], 1),
    flavour,
    dtypes,
    tokenizerDir: null, // the benchmark feeds token ids
    staticKv,
    onProgress: (p) => {
      if (performance.now() - last < 10_000 && p.done < p.total) return;
      last = performance.now();
      console.error(`  building ${preset}: ${p.stage} ${p.done}/${p.total}, ${((last - started) / 1000).toFixed(0)} s`);
    },
  });
  writeFileSync(stampFile, JSON.stringify({ preset, flavour, seed: 1, dtypes, staticKv, graphs: GRAPHS_VERSION }));
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

/** Generates `newTokens` tokens (EOS suppressed) and returns them with the streamed tokens' timestamps. */
async function timedGenerate(model: Model, prompt: number[], newTokens: number): Promise<{ start: number; times: number[]; tokens: number[] }> {
  const streamer = new TimingStreamer();
  const start = performance.now();
  const output = (await model.generate({
    input_ids: new Tensor("int64", BigInt64Array.from(prompt, BigInt), [1, prompt.length]),
    attention_mask: new Tensor("int64", new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]),
    max_new_tokens: newTokens,
    min_new_tokens: newTokens,
    do_sample: false,
    streamer,
  } as never)) as Tensor;
  const ids = Array.from(output.data as BigInt64Array, Number);
  return { start, times: streamer.times, tokens: ids.slice(prompt.length) };
}

interface ContextResult {
  context: number;
  ttftMs: number;
  /** One read of the weights at the measured bandwidth (prefill is compute-bound; this is a floor). */
  ttftBoundMs: number;
  decodeTokS: number;
  /** Bandwidth over (weights + KV cache) bytes per token. */
  decodeBoundTokS: number;
  /**
   * Mean onnxruntime session.run time per decode step (transformers.js: the rest of a step is its
   * JS loop; static-kv: the rest is the 8-byte readback, which also waits for the device).
   */
  ortMsPerStep: number;
  /** static-kv engines: mean readback time per step (queued: one readback serves several steps). */
  readbackMsPerStep: number | null;
  /** Leading generated tokens equal to transformers.js's for the same prompt (null: not compared). */
  sameTokens: number | null;
  gpuMemoryMiB: number | null;
  notes: { decode?: number; ttft?: number } | null;
}

interface EngineResult {
  engine: Engine;
  loadSeconds: number;
  contexts: ContextResult[];
  error?: string;
}

interface ModelResult {
  preset: string;
  dtype: ModelDtype;
  flavour: GraphFlavour;
  fileBytes: number;
  weightBytesPerToken: number;
  gpuMemoryAfterLoadMiB: number | null;
  rssAfterLoadMiB: number;
  engines: EngineResult[];
  /** The static-KV graph against the transformers.js graph on the benchmarked device. */
  parity: Parity | null;
  profiles: ProfileSummary[];
}

type Cli = ReturnType<typeof parseOptions>;

interface Measured {
  ttfts: number[];
  decodeTokS: number;
  ortMsPerStep: number;
  readbackMsPerStep: number | null;
  tokens: number[];
}

/** One engine, loaded: measures a prompt (TTFT) and a decode run. */
interface EngineRunner {
  measure(prompt: number[], newTokens: number, repeats: number): Promise<Measured>;
  dispose(): Promise<void>;
}

async function transformersRunner(o: Cli, dir: string, dtype: ModelDtype): Promise<EngineRunner> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, device: o.device, dtype });
  const runDurations = timeSessionRuns(model);
  return {
    async measure(prompt, newTokens, repeats) {
      await timedGenerate(model, prompt, 2); // compiles this shape's kernels
      const ttfts: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const run = await timedGenerate(model, prompt, 1);
        ttfts.push(run.times[0] - run.start);
      }
      runDurations.length = 0;
      const decode = await timedGenerate(model, prompt, newTokens);
      const decodeRuns = runDurations.slice(1); // the first run is the prefill
      const span = (decode.times.at(-1)! - decode.times[0]) / 1000;
      return {
        ttfts,
        decodeTokS: (decode.times.length - 1) / span,
        ortMsPerStep: decodeRuns.reduce((a, b) => a + b, 0) / decodeRuns.length,
        readbackMsPerStep: null,
        tokens: decode.tokens,
      };
    },
    dispose: async () => {
      await model.dispose();
    },
  };
}

async function staticKvRunner(o: Cli, dir: string, dtype: ModelDtype, engine: Engine, capacity: number): Promise<EngineRunner> {
  const decoder = await StaticKvDecoder.open({
    modelPath: join(dir, "onnx", staticKvFileName(dtype)),
    device: o.device,
    capacity,
    webgpuOptions: engine === "static-kv-queued-noval" ? { validationMode: "disabled" } : undefined,
  });
  const queued = engine !== "static-kv";
  const generate = async (prompt: number[], newTokens: number) => {
    const start = performance.now();
    const tokens = [(await decoder.prefill(prompt)).token];
    const times = [performance.now()];
    decoder.resetStats();
    if (queued) {
      tokens.push(...(await decoder.steps(newTokens - 1, Math.min(o["readback-every"], decoder.ringSize))));
      times.push(performance.now());
    } else {
      while (tokens.length < newTokens) {
        tokens.push((await decoder.step()).token);
        times.push(performance.now());
      }
    }
    return { start, times, tokens };
  };
  return {
    async measure(prompt, newTokens, repeats) {
      await generate(prompt, 2);
      const ttfts: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const run = await generate(prompt, 1);
        ttfts.push(run.times[0] - run.start);
      }
      const decode = await generate(prompt, newTokens);
      const steps = decoder.stats.runs;
      return {
        ttfts,
        decodeTokS: (decode.tokens.length - 1) / ((decode.times.at(-1)! - decode.times[0]) / 1000),
        ortMsPerStep: decoder.stats.runMs / steps,
        readbackMsPerStep: decoder.stats.readbackMs / steps,
        tokens: decode.tokens,
      };
    },
    dispose: () => decoder.dispose(),
  };
}

function leadingSame(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

async function benchModel(o: Cli, dir: string, preset: string, dtype: ModelDtype, bandwidth: number, baselineGpuMiB: number | null): Promise<ModelResult> {
  const args = PRESETS[preset as keyof typeof PRESETS];
  const bytes = weightBytesPerToken(dir, dtype);
  const contexts = o.contexts.filter((c) => {
    if (c + o["new-tokens"] <= args.max_seq_len) return true;
    console.error(`  skipping context ${c}: ${preset} accepts ${args.max_seq_len} positions`);
    return false;
  });
  const capacity = Math.max(...contexts) + o["new-tokens"] + 2;
  const result: ModelResult = {
    preset,
    dtype,
    flavour: o.flavour,
    fileBytes: bytes.total,
    weightBytesPerToken: bytes.perToken,
    gpuMemoryAfterLoadMiB: null,
    rssAfterLoadMiB: 0,
    engines: [],
    parity: null,
    profiles: [],
  };
  const reference = new Map<number, number[]>(); // context -> transformers.js tokens
  for (const engine of o.engineList) {
    const entry: EngineResult = { engine, loadSeconds: 0, contexts: [] };
    result.engines.push(entry);
    let runner: EngineRunner | undefined;
    try {
      const loadStart = performance.now();
      runner = engine === "transformers" ? await transformersRunner(o, dir, dtype) : await staticKvRunner(o, dir, dtype, engine, capacity);
      entry.loadSeconds = (performance.now() - loadStart) / 1000;
      if (engine === "transformers") {
        const gpu = gpuMemoryMiB();
        result.gpuMemoryAfterLoadMiB = gpu === null || baselineGpuMiB === null ? null : gpu - baselineGpuMiB;
        result.rssAfterLoadMiB = process.memoryUsage.rss() / 2 ** 20;
      }
      for (const context of contexts) {
        const m = await runner.measure(randomPrompt(context, context), o["new-tokens"], o.repeats);
        if (engine === "transformers") reference.set(context, m.tokens);
        const peer = reference.get(context);
        const gpu = gpuMemoryMiB();
        entry.contexts.push({
          context,
          ttftMs: median(m.ttfts),
          ttftBoundMs: (bytes.perToken / bandwidth) * 1000,
          decodeTokS: m.decodeTokS,
          decodeBoundTokS: bandwidth / (bytes.perToken + kvBytes(args, dtype, context + o["new-tokens"] / 2)),
          ortMsPerStep: m.ortMsPerStep,
          readbackMsPerStep: m.readbackMsPerStep,
          sameTokens: engine === "transformers" || !peer ? null : leadingSame(m.tokens, peer),
          gpuMemoryMiB: gpu === null || baselineGpuMiB === null ? null : gpu - baselineGpuMiB,
          notes: o.device === "webgpu" && o.flavour === "gpu" ? (NOTES_FIGURES[`${preset} ${dtype} ${context}`] ?? null) : null,
        });
        const c = entry.contexts.at(-1)!;
        console.error(`  ${preset} ${dtype} ${engine} context ${context}: TTFT ${c.ttftMs.toFixed(1)} ms, decode ${c.decodeTokS.toFixed(1)} tok/s`);
      }
    } catch (e) {
      entry.error = e instanceof Error ? e.message : String(e);
      console.error(`  ${preset} ${dtype} ${engine}: ${entry.error}`);
    } finally {
      await runner?.dispose();
    }
  }
  if (o.flavour === "gpu" && o.engineList.some((e) => e !== "transformers")) {
    try {
      result.parity = await checkParity(o, dir, dtype);
    } catch (e) {
      console.error(`  parity check failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (o.profile) result.profiles = await profileDecode(o, dir, dtype, contexts[Math.min(1, contexts.length - 1)], capacity);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Parity of the static-KV graph with the transformers.js graph on the benchmarked device

interface Parity {
  steps: number;
  /** Worst max|a-b|/max|b| of the logits over the steps. */
  worstRelativeError: number;
  /** Steps whose greedy tokens differ (both graphs see the same inputs: the transformers.js graph's token). */
  tokenMismatches: number;
  /** Steps whose static-KV token is not the argmax of its own downloaded logits. */
  deviceArgmaxMismatches: number;
}

/**
 * A 32-token prompt and 16 greedy steps through both graphs on the device: the transformers.js
 * graph in a plain session (caches through the host, as the builder's CPU tests drive it) and the
 * static-KV decoder with logits downloaded. Both are fed the transformers.js graph's tokens.
 */
async function checkParity(o: Cli, dir: string, dtype: ModelDtype): Promise<Parity> {
  const steps = 16;
  const prompt = randomPrompt(32, 7);
  const peer = await OrtDecoder.open(dir, dtype, { executionProviders: [o.device], logSeverityLevel: 3 });
  const decoder = await StaticKvDecoder.open({ modelPath: join(dir, "onnx", staticKvFileName(dtype)), device: o.device, capacity: 64, logits: true });
  const result: Parity = { steps, worstRelativeError: 0, tokenMismatches: 0, deviceArgmaxMismatches: 0 };
  try {
    let input = prompt;
    let fast = await decoder.prefill(prompt);
    for (let s = 0; s < steps; s++) {
      const want = (await peer.step(input)).logits;
      result.worstRelativeError = Math.max(result.worstRelativeError, relativeError(fast.logits!, want));
      const token = argmax(want);
      if (fast.token !== token) result.tokenMismatches++;
      if (fast.token !== argmax(fast.logits!)) result.deviceArgmaxMismatches++;
      input = [token];
      // Feed the peer's token to both graphs so one divergence does not cascade.
      fast = s + 1 < steps ? await decoder.prefill([token], decoder.cachedTokens) : fast;
    }
  } finally {
    await decoder.dispose();
    await peer.release();
  }
  console.error(`  parity ${dtype}: worst relative logits error ${result.worstRelativeError.toExponential(2)}, token mismatches ${result.tokenMismatches}/${steps}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Profiling: onnxruntime's own per-node timing of decode steps

interface ProfileSummary {
  engine: Engine;
  context: number;
  steps: number;
  /** Mean model_run time per step (profiling adds overhead). */
  runMsPerStep: number;
  /** By category and operator: calls and time per step. */
  rows: { category: string; op: string; callsPerStep: number; msPerStep: number }[];
}

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; provider?: string };
}

/** Groups the events inside the last `steps` model_run events by category and operator. */
function summariseProfile(file: string, engine: Engine, context: number, steps: number): ProfileSummary {
  const events = JSON.parse(readFileSync(file, "utf8")) as TraceEvent[];
  rmSync(file, { force: true });
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").slice(-steps);
  const from = runs[0]?.ts ?? 0;
  const groups = new Map<string, { category: string; op: string; calls: number; us: number }>();
  for (const e of events) {
    if (e.ts < from || e.cat === "Session") continue;
    if (e.cat === "Node" && !e.name.endsWith("_kernel_time")) continue;
    // Node events carry the execution provider: a node that fell back to the CPU shows up here.
    const provider = e.args?.provider ? ` (${e.args.provider.replace("ExecutionProvider", "")})` : "";
    const op = (e.args?.op_name ?? e.name.replace(/_\d+$/, "")) + provider;
    const key = `${e.cat}|${op}`;
    const g = groups.get(key) ?? { category: e.cat, op, calls: 0, us: 0 };
    g.calls++;
    g.us += e.dur;
    groups.set(key, g);
  }
  const rows = [...groups.values()]
    .map((g) => ({ category: g.category, op: g.op, callsPerStep: g.calls / runs.length, msPerStep: g.us / 1000 / runs.length }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
  return { engine, context, steps: runs.length, runMsPerStep: runs.reduce((a, r) => a + r.dur, 0) / 1000 / runs.length, rows };
}

/** Ends a session's profiling and returns the trace file (onnxruntime-node 1.30 does not return its name). */
function endProfiling(session: ort.InferenceSession, prefix: string): string {
  (session as unknown as { handler: { endProfiling(): void } }).handler.endProfiling();
  const dir = dirname(prefix);
  const files = readdirSync(dir).filter((f) => f.startsWith(basename(prefix)) && f.endsWith(".json"));
  if (files.length === 0) throw new Error(`no profile file ${prefix}*.json was written`);
  return join(dir, files.sort().at(-1)!);
}

async function profileDecode(o: Cli, dir: string, dtype: ModelDtype, context: number, capacity: number): Promise<ProfileSummary[]> {
  const steps = 32;
  const prompt = randomPrompt(context, context);
  capacity = Math.max(capacity, context + steps + 2);
  const profiles: ProfileSummary[] = [];
  const prefix = resolve(o["models-dir"], `profile-${process.pid}`);
  for (const engine of o.engineList.filter((e) => e === "transformers" || e === "static-kv")) {
    try {
      if (engine === "transformers") {
        const model = await AutoModelForCausalLM.from_pretrained(dir, {
          local_files_only: true,
          device: o.device,
          dtype,
          session_options: { enableProfiling: true, profileFilePrefix: `${prefix}-tjs` },
        } as never);
        await timedGenerate(model, prompt, steps + 1);
        const session = (model as unknown as { sessions: { model: ort.InferenceSession } }).sessions.model;
        const file = endProfiling(session, `${prefix}-tjs`);
        await model.dispose();
        profiles.push(summariseProfile(file, engine, context, steps));
      } else {
        const decoder = await StaticKvDecoder.open({
          modelPath: join(dir, "onnx", staticKvFileName(dtype)),
          device: o.device,
          capacity,
          sessionOptions: { enableProfiling: true, profileFilePrefix: `${prefix}-skv` },
        });
        await decoder.prefill(prompt);
        for (let s = 0; s < steps; s++) await decoder.step();
        const session = (decoder as unknown as { session: ort.InferenceSession }).session;
        const file = endProfiling(session, `${prefix}-skv`);
        await decoder.dispose();
        profiles.push(summariseProfile(file, engine, context, steps));
      }
    } catch (e) {
      console.error(`  profile ${engine} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return profiles;
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
    ["model", "dtype", "engine", "ctx", "TTFT ms", "vs tjs", "decode tok/s", "vs tjs", "ms/step", "ORT ms", "readback ms", "bound tok/s", "% of bound", "notes tok/s", "vs notes", "same tokens", "GPU MiB"],
  ];
  for (const r of results) {
    const peer = r.engines.find((e) => e.engine === "transformers");
    for (const e of r.engines) {
      if (e.error) rows.push([r.preset, r.dtype, e.engine, "-", `failed: ${e.error.slice(0, 60)}`, ...Array(12).fill("-")]);
      for (const c of e.contexts) {
        const p = peer?.contexts.find((x) => x.context === c.context);
        rows.push([
          r.preset,
          r.dtype,
          e.engine,
          String(c.context),
          c.ttftMs.toFixed(1),
          p && e !== peer ? `${(p.ttftMs / c.ttftMs).toFixed(2)}x` : "-",
          c.decodeTokS.toFixed(1),
          p && e !== peer ? `${(c.decodeTokS / p.decodeTokS).toFixed(2)}x` : "-",
          (1000 / c.decodeTokS).toFixed(2),
          c.ortMsPerStep.toFixed(2),
          c.readbackMsPerStep === null ? "-" : c.readbackMsPerStep.toFixed(2),
          c.decodeBoundTokS.toFixed(0),
          pct(c.decodeTokS / c.decodeBoundTokS),
          c.notes?.decode ? String(c.notes.decode) : "-",
          c.notes?.decode ? `${(c.decodeTokS / c.notes.decode).toFixed(2)}x` : "-",
          c.sameTokens === null ? "-" : String(c.sameTokens),
          c.gpuMemoryMiB === null ? "-" : String(c.gpuMemoryMiB),
        ]);
      }
    }
  }
  return table(rows);
}

function profileReport(results: ModelResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    for (const p of r.profiles) {
      out.push(`\nprofile ${r.preset} ${r.dtype} ${p.engine}, context ${p.context}: ${p.steps} decode steps, model_run ${p.runMsPerStep.toFixed(2)} ms/step (with profiling)`);
      const rows = [["category", "op", "calls/step", "ms/step"]];
      for (const row of p.rows.slice(0, 25)) rows.push([row.category, row.op, row.callsPerStep.toFixed(1), row.msPerStep.toFixed(3)]);
      out.push(table(rows));
    }
  }
  return out.join("\n");
}

/**
 * Whether onnxruntime-node can turn on WebGPU graph capture: as a WebGPU EP option, and as the
 * session config entry the EP reads. onnxruntime logs "This session will use the graph capture
 * feature" at INFO when the EP has it enabled; the verbose session log below shows whether it does.
 */
async function probeGraphCapture(): Promise<void> {
  const g = new GraphBuilder();
  g.node("Add", [g.input("a", DataType.FLOAT, [4]), g.input("b", DataType.FLOAT, [4])], { outputs: ["c"] });
  g.output("c", DataType.FLOAT, [4]);
  const bytes = encodeModel(g.toModel({ graphName: "probe", opsets: { "": 21 }, producerName: "bench-model", producerVersion: "1", locate: () => [] }));
  const feeds = { a: new ort.Tensor("float32", new Float32Array(4), [4]), b: new ort.Tensor("float32", new Float32Array(4), [4]) };
  try {
    const s = await ort.InferenceSession.create(bytes, { executionProviders: [{ name: "webgpu", enableGraphCapture: "1" } as never] });
    await s.release();
    console.error("probe-capture: the WebGPU EP option enableGraphCapture was accepted");
  } catch (e) {
    console.error(`probe-capture: WebGPU EP option enableGraphCapture: ${e instanceof Error ? e.message : String(e)}`);
  }
  console.error("probe-capture: session with extra ep.webgpuexecutionprovider.enableGraphCapture=1, verbose log:");
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"], extra: { "ep.webgpuexecutionprovider.enableGraphCapture": "1" }, logSeverityLevel: 0 });
  for (let i = 0; i < 3; i++) await s.run(feeds);
  await s.release();
  console.error("probe-capture: done");
}

async function main(): Promise<void> {
  const o = parseOptions();
  for (const p of o.presets) if (!isPresetName(p)) throw new Error(`--preset: unknown preset ${p}`);
  env.allowRemoteModels = false;
  if (o["build-only"]) {
    for (const preset of o.presets) console.error(`built ${await ensureModel(o["models-dir"], preset, o.flavour, o.dtypes, o.rebuild)}`);
    return;
  }
  const device = deviceName(o.device);
  console.error(`device: ${device}`);
  const measured = await measureBandwidth(o.device, resolve(o["models-dir"]));
  const bandwidth = o["bandwidth-gbs"] !== undefined ? o["bandwidth-gbs"] * 1e9 : measured;
  const bandwidthNote = `bandwidth for the bounds ${(bandwidth / 1e9).toFixed(0)} GB/s (${o["bandwidth-gbs"] !== undefined ? "given" : "measured"}; in-process streaming-read probe ${(measured / 1e9).toFixed(0)} GB/s)`;
  console.error(bandwidthNote);
  if (o["probe-capture"]) await probeGraphCapture();
  const results: ModelResult[] = [];
  for (const preset of o.presets) {
    const dir = await ensureModel(o["models-dir"], preset, o.flavour, o.dtypes, o.rebuild);
    for (const dtype of o.dtypes) results.push(await benchModel(o, dir, preset, dtype, bandwidth, gpuMemoryMiB()));
  }
  console.log(`\n${device}; ${o.flavour} flavour; ${bandwidthNote}; ${o["new-tokens"]} decode tokens, TTFT median of ${o.repeats}\n`);
  console.log(report(results));
  console.log(
    "\nengines: transformers = transformers.js generate() on the transformers.js graph (the peer, 'tjs'); static-kv = src/gpu/fast-decoder on the static-KV graph" +
      `\n(same weights, device-side greedy token, one 4-byte readback per token); static-kv-queued = the same queueing ${o["readback-every"]} steps per readback;` +
      "\n-noval = with the WebGPU EP's validationMode=disabled. vs tjs > 1x is better (TTFT: tjs/engine; decode: engine/tjs)." +
      "\nbound tok/s: bandwidth / (weight bytes + KV cache bytes) per token; ms/step: wall time per decode step; ORT ms: session.run per step;" +
      "\nreadback ms: token readback per step (waits for the device); same tokens: leading greedy tokens equal to tjs's (of the decode run)." +
      "\nnotes: onnxruntime-genai builder output on one H200 (runtime-notes section 8); vs notes > 1x is better.",
  );
  for (const r of results) {
    const loads = r.engines.map((e) => `${e.engine} ${e.loadSeconds.toFixed(1)} s`).join(", ");
    console.log(
      `${r.preset} ${r.dtype}: ${(r.fileBytes / 2 ** 30).toFixed(2)} GiB of weights, ${(r.weightBytesPerToken / 2 ** 30).toFixed(2)} GiB read per token; load ${loads}; ` +
        `GPU memory after the transformers.js load ${r.gpuMemoryAfterLoadMiB ?? "-"} MiB, process RSS ${r.rssAfterLoadMiB.toFixed(0)} MiB`,
    );
    if (r.parity) {
      console.log(
        `  static-KV graph vs transformers.js graph on ${o.device}, 32-token prompt + ${r.parity.steps} steps: worst relative logits error ${r.parity.worstRelativeError.toExponential(2)}, ` +
          `token mismatches ${r.parity.tokenMismatches}, device argmax != host argmax ${r.parity.deviceArgmaxMismatches}`,
      );
    }
  }
  const profiles = profileReport(results);
  if (profiles) console.log(profiles);
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
