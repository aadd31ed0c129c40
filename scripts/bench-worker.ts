/**
 * Benchmark of the GPU worker (`src/gpu`, a real worker process over HTTP, as the edge uses it) against plain
 * transformers.js `pipeline("text-generation")` on the same model folder, in the same run.
 *
 *   npx tsx scripts/bench-worker.ts [--preset small|tiny | --model DIR] [--device cpu|webgpu] [--dtype fp32] [--static-kv]
 *       [--prompt-tokens 128] [--new-tokens 32] [--repeats 5] [--concurrency 1,4,16] [--turns 10]
 *       [--chat-concurrency 1,4] [--sections single,concurrency,chat,batching] [--threads 0] [--json out.json]
 *
 * Sections (each prints a markdown table with the ratio worker vs pipeline):
 *  - single: one stream, time to first token and decode tokens/s (medians over --repeats, interleaved runs);
 *  - concurrency: N simultaneous requests: the FIFO worker (MAX_RUNNING=1) queues them, a second worker with
 *    MAX_RUNNING=max N runs them side by side (batched decode steps on CPU), the pipeline gets N concurrent calls;
 *  - chat: a --turns-turn conversation per client, worker with and without prefix reuse (a second worker with
 *    PREFIX_REUSE=off) vs pipeline, and the most reuse could give (the no-reuse chat's time to first token);
 *  - batching: decode throughput of B equal-length rows in one forward vs B single-row forwards (in-process,
 *    transformers.js model.forward), with a check that both give the same greedy tokens.
 *
 * Greedy decoding everywhere, stop tokens disabled, so every run generates exactly --new-tokens tokens.
 * --preset builds a random-weight model into build/bench-models/ once (shapes are real, text is noise).
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { AutoModelForCausalLM, BaseStreamer, Tensor, env, pipeline, type PreTrainedModel } from "@huggingface/transformers";
import { Tokenizer } from "../src/llama/tokenizer.js";
import { PRESETS, defineModelArgs, isPresetName, type ModelArgs } from "../src/model/config.js";
import { buildModelFolder } from "../src/model/onnx/index.js";
import { Rng } from "../src/model/rng.js";
import { randomWeights } from "../src/model/weights.js";
import { createWorkerClient, type WorkerClient } from "../src/protocol/index.js";
import { spawnGpuWorker } from "./gpu-process.js";
import { median, percentile } from "./bench-stats.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** A small but real-shaped Llama: GQA 4:1, head_dim 64, tied 128k embeddings (~90M parameters). */
const BENCH_PRESETS: Record<string, ModelArgs> = {
  small: defineModelArgs({
    dim: 512,
    n_layers: 8,
    n_heads: 8,
    n_kv_heads: 2,
    vocab_size: 128256,
    multiple_of: 256,
    rope_theta: 500000,
    use_scaled_rope: true,
    max_seq_len: 8192,
    tie_word_embeddings: true,
  }),
  tiny: PRESETS.tiny,
};

const { values: opts } = parseArgs({
  options: {
    preset: { type: "string", default: "small" },
    model: { type: "string" },
    device: { type: "string", default: "cpu" },
    dtype: { type: "string", default: "fp32" },
    "prompt-tokens": { type: "string", default: "128" },
    "new-tokens": { type: "string", default: "32" },
    repeats: { type: "string", default: "5" },
    concurrency: { type: "string", default: "1,4,16" },
    turns: { type: "string", default: "10" },
    "chat-concurrency": { type: "string", default: "1,4" },
    "user-tokens": { type: "string", default: "48" },
    "system-tokens": { type: "string", default: "256" },
    sections: { type: "string", default: "single,concurrency,chat,batching" },
    threads: { type: "string", default: "0" },
    /**
     * greedy (default): temperature 0 everywhere. chat: sampled as chat requests are, temperature 0.6, top-p 0.9
     * and top-k 50 on the worker, temperature 0.6 and transformers.js' default top-k 50 in the pipeline (it
     * ignores top-p), fixed seeds; tokens are then not compared. Top-k matters with random weights: their
     * next-token distribution is nearly flat, and top-p 0.9 alone would keep ~100k tokens to sort every step,
     * which a trained model's peaked distribution never asks for.
     */
    sampling: { type: "string", default: "greedy" },
    /** The worker's CPU_SPIN (on | off; default: the worker's own default). */
    "cpu-spin": { type: "string" },
    json: { type: "string" },
    /** A bundled worker entry (.mjs) to run with plain node instead of `tsx src/gpu/main.ts` (device runs). */
    "worker-entry": { type: "string" },
    /** tokenizer.json + tokenizer_config.json for --preset builds (default: the registry package's). */
    "tokenizer-dir": { type: "string" },
    /** Also build the static-KV graph, so the worker serves greedy requests with its fast decoder (FAST_DECODER=auto). */
    "static-kv": { type: "boolean", default: false },
  },
});

const int = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a non-negative integer, got ${v}`);
  return n;
};
const list = (name: string, v: string | undefined) => (v ?? "").split(",").filter(Boolean).map((x) => int(name, x));

const device = opts.device as "cpu" | "webgpu";
const dtype = opts.dtype!;
const promptTokens = int("prompt-tokens", opts["prompt-tokens"]);
const newTokens = int("new-tokens", opts["new-tokens"]);
const repeats = int("repeats", opts.repeats);
const concurrencies = list("concurrency", opts.concurrency);
const turns = int("turns", opts.turns);
const chatConcurrencies = list("chat-concurrency", opts["chat-concurrency"]);
const userTokens = int("user-tokens", opts["user-tokens"]);
const systemTokens = int("system-tokens", opts["system-tokens"]);
const sections = new Set(opts.sections!.split(","));
const threads = int("threads", opts.threads);
const sampledMode = opts.sampling === "chat";
if (!sampledMode && opts.sampling !== "greedy") throw new Error(`--sampling: expected greedy or chat, got ${opts.sampling}`);
const CHAT_TEMPERATURE = 0.6;
const cpuSpin = opts["cpu-spin"];
if (cpuSpin !== undefined && cpuSpin !== "on" && cpuSpin !== "off") throw new Error(`--cpu-spin: expected on or off, got ${cpuSpin}`);

// ---------------------------------------------------------------------------------------------------------
// Statistics and output

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");
const results: Record<string, unknown> = {};

function table(title: string, header: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(" | ")} |`);
  console.log(`| ${header.map(() => "---").join(" | ")} |`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

/** One timed generation: client-side TTFT and decode rate. */
interface Run {
  ttftMs: number;
  decodeTps: number;
  tokens: number[];
  totalMs: number;
  cachedTokens?: number;
  /** The worker's own figures (from receipt of the request), to separate HTTP from model time. */
  server?: { queueMs: number; ttftMs: number | null };
}

function runFromTimes(t0: number, times: number[], tokens: number[], end: number, cachedTokens?: number): Run {
  const first = times[0] ?? NaN;
  const last = times.at(-1) ?? NaN;
  return {
    ttftMs: first - t0,
    decodeTps: times.length >= 2 ? ((times.length - 1) * 1000) / (last - first) : NaN,
    tokens,
    totalMs: end - t0,
    ...(cachedTokens === undefined ? {} : { cachedTokens }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Model folder, prompts

async function modelFolder(): Promise<string> {
  if (opts.model) return resolve(opts.model);
  const args = BENCH_PRESETS[opts.preset!] ?? (isPresetName(opts.preset!) ? PRESETS[opts.preset] : undefined);
  if (!args) throw new Error(`--preset: expected one of ${[...Object.keys(BENCH_PRESETS), ...Object.keys(PRESETS)].join(", ")}`);
  const dir = join(ROOT, "build", "bench-models", `${opts.preset}-s1-${dtype}${opts["static-kv"] ? "-static-kv" : ""}`);
  if (!existsSync(join(dir, "config.json"))) {
    console.error(`building ${opts.preset} (${dtype}) into ${dir} …`);
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await buildModelFolder({
      outDir: tmp,
      weights: randomWeights(args, 1),
      flavour: "gpu",
      dtypes: [dtype as "fp32"],
      staticKv: opts["static-kv"],
      ...(opts["tokenizer-dir"] ? { tokenizerDir: resolve(opts["tokenizer-dir"]) } : {}),
    });
    renameSync(tmp, dir);
  }
  return dir;
}

const WORDS = (
  "the model serves a session of tokens at the edge while the worker streams each answer back with low latency " +
  "and a cache of keys and values per turn so that the next question only computes what is new in the chat " +
  "history about weather cities rivers music numbers code review tests deploy cluster memory budget queue fair"
).split(" ");

/** Deterministic English-like text of about `tokens` tokens (ids from our tokenizer, identical to HF's). */
function textOfTokens(tokenizer: Tokenizer, tokens: number, seed: number): { text: string; ids: number[] } {
  const rng = new Rng(seed);
  const words: string[] = [];
  let ids: number[] = [];
  while (ids.length < tokens) {
    words.push(WORDS[rng.nextUint32() % WORDS.length]!);
    ids = tokenizer.encode(words.join(" "), { bos: false, eos: false });
  }
  return { text: words.join(" "), ids };
}

const HEADER = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;

// ---------------------------------------------------------------------------------------------------------
// The two systems under test

interface WorkerHandle {
  client: WorkerClient;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The FIFO worker is started with MAX_RUNNING=1 explicitly (the CPU default is 4, see src/gpu/config.ts). */
async function startWorker(dir: string, maxRunning = 1, extraEnv: Record<string, string> = {}): Promise<WorkerHandle> {
  const secret = randomBytes(24).toString("hex");
  const { child, url } = await spawnGpuWorker({
    args: opts["worker-entry"] ? [resolve(opts["worker-entry"])] : undefined,
    env: {
      MODEL_DIR: dir,
      DEVICE: device,
      DTYPE: dtype,
      PORT: "0",
      WORKER_SECRET: secret,
      QUEUE_CAPACITY: "256",
      MAX_RUNNING: String(maxRunning),
      KV_BUDGET_BYTES: String(8 * 1024 ** 3),
      CPU_THREADS: String(threads),
      ...(cpuSpin ? { CPU_SPIN: cpuSpin } : {}),
      LOG_LEVEL: "info",
      ...extraEnv,
    },
    stderr: "inherit",
  });
  const client = createWorkerClient({ baseUrl: url, secret });
  return {
    client,
    child,
    stop: () =>
      new Promise<void>((done) => {
        child.once("exit", () => done());
        child.kill("SIGTERM");
      }),
  };
}

let requestCounter = 0;

async function workerRun(client: WorkerClient, ids: number[], sessionId: string | null): Promise<Run> {
  const t0 = performance.now();
  const events = await client.generate({
    version: 1,
    request_id: `bench-${++requestCounter}`,
    session_id: sessionId,
    prompt_token_ids: ids,
    sampling: sampledMode
      ? { max_new_tokens: newTokens, temperature: CHAT_TEMPERATURE, top_p: 0.9, top_k: 50, seed: requestCounter, stop_token_ids: [] }
      : { max_new_tokens: newTokens, temperature: 0, stop_token_ids: [] },
  });
  const times: number[] = [];
  const tokens: number[] = [];
  let cached = 0;
  let server: Run["server"];
  for await (const e of events) {
    if (e.type === "start") cached = e.cached_tokens;
    if (e.type === "token") {
      times.push(performance.now());
      tokens.push(e.id);
    }
    if (e.type === "done") {
      if (e.finish_reason !== "length") throw new Error(`worker run ended with ${e.finish_reason}`);
      server = { queueMs: e.timings.queue_ms, ttftMs: e.timings.ttft_ms };
    }
  }
  return { ...runFromTimes(t0, times, tokens, performance.now(), cached), server };
}

/** Timestamps every generated token (the first put is the prompt). */
class TimingStreamer extends BaseStreamer {
  times: number[] = [];
  tokens: number[] = [];
  private sawPrompt = false;
  override put(value: bigint[][]): void {
    if (!this.sawPrompt) {
      this.sawPrompt = true;
      return;
    }
    this.times.push(performance.now());
    this.tokens.push(Number(value[0]![0]!));
  }
  override end(): void {}
}

type TextGenerator = (text: string, options: Record<string, unknown>) => Promise<unknown>;

async function loadPipeline(dir: string): Promise<TextGenerator> {
  env.allowRemoteModels = false;
  const sessionOptions: Record<string, unknown> = { logSeverityLevel: 3 };
  if (device === "cpu" && threads > 0) sessionOptions.intraOpNumThreads = threads;
  const generator = await pipeline("text-generation", dir, {
    device,
    dtype: dtype as "fp32",
    local_files_only: true,
    session_options: sessionOptions,
  });
  return generator as unknown as TextGenerator;
}

async function pipelineRun(generator: TextGenerator, text: string): Promise<Run> {
  const streamer = new TimingStreamer();
  const t0 = performance.now();
  await generator(text, {
    max_new_tokens: newTokens,
    ...(sampledMode ? { do_sample: true, temperature: CHAT_TEMPERATURE } : { do_sample: false }),
    // The text already carries <|begin_of_text|>; an empty eos list disables stopping (as stop_token_ids: []).
    add_special_tokens: false,
    eos_token_id: [],
    streamer,
  });
  return runFromTimes(t0, streamer.times, streamer.tokens, performance.now());
}

// ---------------------------------------------------------------------------------------------------------
// Sections

/**
 * onnxruntime's CPU thread pool keeps spinning for a moment after a run; the worker and the pipeline live in
 * different processes, so each measurement waits a little for the other's threads to go idle.
 */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

async function singleStream(worker: WorkerHandle, generator: TextGenerator, tokenizer: Tokenizer) {
  // A different text for every run: the fast decoder keeps its last sequence whatever the session id, so
  // repeating one prompt would measure a one-token prefill on the worker against a full one in the pipeline.
  const prompts = Array.from({ length: repeats + 1 }, (_, i) => {
    const { text, ids } = textOfTokens(tokenizer, promptTokens, 11 + i);
    return { text: `<|begin_of_text|>${text}`, ids: [tokenizer.bosId, ...ids] };
  });
  const bosIds = prompts[1]!.ids;
  // Warm-up (first-call costs, JIT) on both.
  await workerRun(worker.client, prompts[0]!.ids, null);
  await pipelineRun(generator, prompts[0]!.text);
  const w: Run[] = [];
  const p: Run[] = [];
  for (let i = 1; i <= repeats; i++) {
    await settle();
    w.push(await workerRun(worker.client, prompts[i]!.ids, null));
    await settle();
    p.push(await pipelineRun(generator, prompts[i]!.text));
  }
  const maxCached = Math.max(...w.map((r) => r.cachedTokens ?? 0));
  const same = !sampledMode && w[0]!.tokens.join() === p[0]!.tokens.join();
  const wt = median(w.map((r) => r.ttftMs));
  const pt = median(p.map((r) => r.ttftMs));
  const wd = median(w.map((r) => r.decodeTps));
  const pd = median(p.map((r) => r.decodeTps));
  table(
    `One stream: prompt ${bosIds.length} tokens (a new text every run; at most ${maxCached} served from the worker's cache), ${newTokens} new tokens, median of ${repeats} (${
      sampledMode ? `sampled: temperature ${CHAT_TEMPERATURE}, top-k 50, top-p 0.9 on the worker` : `same greedy tokens: ${same ? "yes" : "NO"}`
    })`,
    ["system", "TTFT ms", "decode tok/s", "total ms"],
    [
      ["worker (HTTP, separate process)", f1(wt), f1(wd), f1(median(w.map((r) => r.totalMs)))],
      [
        "  of which inside the worker (receipt → first token; queue + validation before prefill)",
        `${f1(median(w.map((r) => r.server?.ttftMs ?? NaN)))} (${f1(median(w.map((r) => r.server?.queueMs ?? NaN)))})`,
        "",
        "",
      ],
      ["transformers.js pipeline (in-process)", f1(pt), f1(pd), f1(median(p.map((r) => r.totalMs)))],
      ["ratio worker / pipeline", `${f2(pt / wt)}× faster`, `${f2(wd / pd)}×`, `${f2(median(p.map((r) => r.totalMs)) / median(w.map((r) => r.totalMs)))}× faster`],
    ],
  );
  const metrics = await (await worker.client.request("GET", "/metrics")).text();
  const metric = (name: string) => Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? NaN);
  console.log(
    `worker-side means over the section (warm-up included): prefill ${f1((1000 * metric("le_worker_prefill_seconds_sum")) / metric("le_worker_prefill_seconds_count"))} ms, ` +
      `decode step ${f2((1000 * metric("le_worker_decode_step_seconds_sum")) / metric("le_worker_decode_step_seconds_count"))} ms`,
  );
  results.single = { promptTokens: bosIds.length, newTokens, worker: { ttftMs: wt, decodeTps: wd }, pipeline: { ttftMs: pt, decodeTps: pd }, sameTokens: same };
}

/** What a worker with MAX_RUNNING > 1 does on this device: batched steps on CPU, alternating steps on GPU. */
const sideBySide = device === "cpu" ? "batched" : "interleaved";

async function concurrency(worker: WorkerHandle, interleaved: WorkerHandle | null, maxC: number, generator: TextGenerator, tokenizer: Tokenizer) {
  const rows: (string | number)[][] = [];
  const out: unknown[] = [];
  for (const c of concurrencies) {
    const prompts = Array.from({ length: c }, (_, i) => textOfTokens(tokenizer, promptTokens, 100 + i));
    const measure = async (one: (i: number) => Promise<Run>) => {
      await settle();
      const t0 = performance.now();
      const runs = await Promise.all(prompts.map((_, i) => one(i)));
      const wall = performance.now() - t0;
      const tokens = runs.reduce((s, r) => s + r.tokens.length, 0);
      return {
        ttftP50: median(runs.map((r) => r.ttftMs)),
        ttftP95: percentile(runs.map((r) => r.ttftMs), 95),
        perStreamTps: median(runs.map((r) => r.decodeTps)),
        aggregateTps: (tokens * 1000) / wall,
        wallMs: wall,
      };
    };
    const w = await measure((i) => workerRun(worker.client, [tokenizer.bosId, ...prompts[i]!.ids], null));
    const wi = c > 1 && interleaved ? await measure((i) => workerRun(interleaved.client, [tokenizer.bosId, ...prompts[i]!.ids], null)) : null;
    const p = await measure((i) => pipelineRun(generator, `<|begin_of_text|>${prompts[i]!.text}`));
    const row = (label: string, m: typeof w) => [c, label, f1(m.ttftP50), f1(m.ttftP95), f1(m.perStreamTps), f1(m.aggregateTps), f1(m.wallMs)];
    const ratio = (label: string, m: typeof w) =>
      [c, label, `${f2(p.ttftP50 / m.ttftP50)}×`, `${f2(p.ttftP95 / m.ttftP95)}×`, `${f2(m.perStreamTps / p.perStreamTps)}×`, `${f2(m.aggregateTps / p.aggregateTps)}×`, `${f2(p.wallMs / m.wallMs)}×`];
    rows.push(row("worker (FIFO, MAX_RUNNING=1)", w));
    if (wi) rows.push(row(`worker (${sideBySide}, MAX_RUNNING=${maxC})`, wi));
    rows.push(row("pipeline (concurrent calls)", p), ratio("ratio FIFO worker / pipeline", w));
    if (wi) rows.push(ratio(`ratio ${sideBySide} worker / pipeline`, wi));
    out.push({ concurrency: c, worker: w, workerSideBySide: wi, pipeline: p });
  }
  table(
    `Concurrent sessions: prompt ${promptTokens + 1} tokens, ${newTokens} new tokens each (ratios: >1 means the worker is better)`,
    ["sessions", "system", "TTFT p50 ms", "TTFT p95 ms", "decode tok/s per stream", "aggregate tok/s", "wall ms"],
    rows,
  );
  results.concurrency = out;
}

/**
 * `worker` reuses prefixes; `withoutReuse` is the same worker started with PREFIX_REUSE=off (both engines then
 * compute every prompt whole: a session id alone would still let the fast decoder reuse its last sequence).
 */
async function chat(worker: WorkerHandle, withoutReuse: WorkerHandle, interleaved: WorkerHandle | null, generator: TextGenerator, tokenizer: Tokenizer) {
  const rows: (string | number)[][] = [];
  const out: unknown[] = [];
  // Each measuring round is a different chat (its own system prompt), so no cache holds any of it at its start.
  const systemOf = (round: number) => textOfTokens(tokenizer, systemTokens, 7 + round).text;
  // Warm-up (first-call costs and JIT, in the workers and in this client) on every system.
  const warmText = `<|begin_of_text|>${HEADER("system")}${systemOf(99)}<|eot_id|>${HEADER("user")}${textOfTokens(tokenizer, userTokens, 999).text}<|eot_id|>${HEADER("assistant")}`;
  const warmIds = tokenizer.encode(warmText, { bos: false, eos: false, allowedSpecial: "all" });
  for (const w of [worker, withoutReuse, interleaved]) if (w) await workerRun(w.client, warmIds, null);
  await pipelineRun(generator, warmText);
  for (const c of chatConcurrencies) {
    const userTurns = Array.from({ length: c }, (_, chatIndex) =>
      Array.from({ length: turns }, (_, t) => textOfTokens(tokenizer, userTokens, 1000 * chatIndex + t).text),
    );
    /** Runs every chat's turns in order (chats concurrently); the history holds the model's own answers. */
    const conversation = async (system: string, run: (chatIndex: number, text: string, ids: number[]) => Promise<Run>) => {
      await settle();
      const t0 = performance.now();
      const perChat = await Promise.all(
        userTurns.map(async (turnsOfChat, chatIndex) => {
          // The history is kept as token ids, answers included, as the edge keeps it (re-tokenizing decoded
          // text would not give the same ids back). The pipeline gets the same history as text.
          const encode = (t: string) => tokenizer.encode(t, { bos: false, eos: false, allowedSpecial: "all" });
          const ids = encode(`<|begin_of_text|>${HEADER("system")}${system}<|eot_id|>`);
          const runs: Run[] = [];
          for (const user of turnsOfChat) {
            ids.push(...encode(`${HEADER("user")}${user}<|eot_id|>${HEADER("assistant")}`));
            const r = await run(chatIndex, tokenizer.decode(ids), [...ids]);
            runs.push(r);
            ids.push(...r.tokens, tokenizer.eotId);
          }
          return { runs, finalPromptTokens: ids.length };
        }),
      );
      const wall = performance.now() - t0;
      const all = perChat.flatMap((x) => x.runs);
      return {
        tokens: perChat.map((x) => x.runs.map((r) => r.tokens.join(",")).join(";")),
        wallMs: wall,
        ttftMean: all.reduce((s, r) => s + r.ttftMs, 0) / all.length,
        ttftLastTurn: median(perChat.map((x) => x.runs.at(-1)!.ttftMs)),
        // The worker's own receipt → first token (queue, validation, prefill) summed over every turn: the
        // part of a turn prefix reuse can shorten; the rest is decoding, which reuse does not change.
        serverTtftSumMs: all.reduce((s, r) => s + (r.server?.ttftMs ?? NaN), 0),
        finalPromptTokens: median(perChat.map((x) => x.finalPromptTokens)),
      };
    };
    type Conversation = Awaited<ReturnType<typeof conversation>>;
    const sessionIds = userTurns.map((_, i) => `chat-c${c}-n${i}-${randomBytes(4).toString("hex")}`);
    const systems: { label: string; run: (round: number) => (chatIndex: number, text: string, ids: number[]) => Promise<Run> }[] = [
      { label: "worker, prefix reuse", run: (round) => (i, _text, ids) => workerRun(worker.client, ids, `${sessionIds[i]!}-r${round}`) },
      {
        label: "worker, no reuse (PREFIX_REUSE=off)",
        run: (round) => (i, _text, ids) => workerRun(withoutReuse.client, ids, `${sessionIds[i]!}-off-r${round}`),
      },
      ...(c > 1 && interleaved
        ? [
            {
              label: `worker, prefix reuse, ${sideBySide} (MAX_RUNNING ≥ ${c})`,
              run: (round: number) => (i: number, _text: string, ids: number[]) => workerRun(interleaved.client, ids, `${sessionIds[i]!}-side-r${round}`),
            },
          ]
        : []),
      { label: "pipeline (no KV reuse)", run: () => (_i, text) => pipelineRun(generator, text) },
    ];
    // Two rounds, the second in reverse order (A B C, C B A), each system's figures the mean of its two runs:
    // whichever system ran first was measured 10–30 % slower in single-round runs (warm-up and drift).
    const runsOf = new Map<string, Conversation[]>(systems.map((sys) => [sys.label, []]));
    for (const [round, order] of [systems, [...systems].reverse()].entries()) {
      for (const sys of order) runsOf.get(sys.label)!.push(await conversation(systemOf(round), sys.run(round)));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const summary = (label: string) => {
      const runs = runsOf.get(label)!;
      return {
        label,
        runs,
        wallMs: mean(runs.map((r) => r.wallMs)),
        ttftMean: mean(runs.map((r) => r.ttftMean)),
        ttftLastTurn: mean(runs.map((r) => r.ttftLastTurn)),
        serverTtftSumMs: mean(runs.map((r) => r.serverTtftSumMs)),
        finalPromptTokens: runs[0]!.finalPromptTokens,
      };
    };
    const [withReuse, noReuse, ...rest] = systems.map((sys) => summary(sys.label)) as [ReturnType<typeof summary>, ReturnType<typeof summary>, ...ReturnType<typeof summary>[]];
    const plain = rest.at(-1)!;
    const side = rest.length > 1 ? rest[0]! : null;
    // Prefix reuse (and batching) must not change the answers (same prompts, greedy), round by round.
    const sameAs = (r: typeof withReuse) => (r.runs.every((run, round) => run.tokens.every((t, i) => t === noReuse.runs[round]!.tokens[i])) ? "yes" : "NO");
    const same = sameAs(withReuse);
    // The most any reuse could give: the no-reuse chat with its time to first token (worker side) made free.
    // With c chats at once the turns overlap, so the figure is only computed for one chat.
    const ceiling = c === 1 ? noReuse.wallMs / (noReuse.wallMs - noReuse.serverTtftSumMs) : NaN;
    for (const r of side ? [withReuse, side, noReuse, plain] : [withReuse, noReuse, plain]) {
      rows.push([
        c,
        r.label,
        f1(r.wallMs),
        f2(noReuse.wallMs / r.wallMs),
        r === noReuse && c === 1 ? `${f1((100 * r.serverTtftSumMs) / r.wallMs)} % → ${f2(ceiling)}×` : "",
        f2(plain.wallMs / r.wallMs),
        f1(r.ttftMean),
        f1(r.ttftLastTurn),
        r.finalPromptTokens,
        r === plain ? "" : sameAs(r),
      ]);
    }
    const strip = ({ runs, ...figures }: typeof withReuse) => ({ ...figures, wallMsPerRound: runs.map((r) => r.wallMs) });
    out.push({
      chats: c,
      withReuse: strip(withReuse),
      sideBySide: side ? strip(side) : null,
      noReuse: strip(noReuse),
      pipeline: strip(plain),
      reuseCeiling: ceiling,
      reuseSameTokens: same === "yes",
      sideBySideSameTokens: side ? sameAs(side) === "yes" : null,
    });
  }
  table(
    `${turns}-turn chat per session (system ${systemTokens} + user ${userTokens} tokens per turn, ${newTokens} new tokens per answer; mean of two rounds, A B C then C B A)`,
    [
      "chats",
      "system",
      "total ms",
      "speed-up vs worker without reuse",
      "time to first token's share of the no-reuse chat → most reuse can give",
      "speed-up vs pipeline",
      "TTFT mean ms",
      "TTFT last turn ms",
      "final prompt tokens",
      "same tokens with/without reuse",
    ],
    rows,
  );
  results.chat = out;
}

/** Batched vs sequential decode with equal-length rows, on transformers.js' decoder forward (no worker). */
async function batching(dir: string, tokenizer: Tokenizer) {
  env.allowRemoteModels = false;
  const sessionOptions: Record<string, unknown> = { logSeverityLevel: 3 };
  if (device === "cpu" && threads > 0) sessionOptions.intraOpNumThreads = threads;
  const model = (await AutoModelForCausalLM.from_pretrained(dir, {
    device,
    dtype: dtype as "fp32",
    local_files_only: true,
    session_options: sessionOptions,
  })) as PreTrainedModel;
  const i64 = (rows: number[][]) => new Tensor("int64", BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);
  const argmaxRows = (logits: Tensor): number[] => {
    const [b, s, v] = logits.dims as [number, number, number];
    const data = logits.data as Float32Array;
    return Array.from({ length: b }, (_, row) => {
      const off = (row * s + s - 1) * v;
      let best = 0;
      for (let i = 1; i < v; i++) if (data[off + i]! > data[off + best]!) best = i;
      return best;
    });
  };
  /** Greedy decode of `rows` (equal lengths) as one batch; returns tokens per row and decode seconds. */
  const decode = async (rows: number[][]) => {
    let past: Record<string, Tensor> | undefined;
    let length = rows[0]!.length;
    const step = async (ids: number[][]) => {
      const inputs: Record<string, unknown> = {
        input_ids: i64(ids),
        attention_mask: i64(ids.map(() => new Array<number>(length).fill(1))),
        num_logits_to_keep: new Tensor("int64", BigInt64Array.of(1n), []),
      };
      if (past) inputs.past_key_values = past;
      const out = (await model.forward(inputs)) as Record<string, Tensor>;
      past = Object.fromEntries(Object.entries(out).filter(([k]) => k.startsWith("present")).map(([k, t]) => [k.replace("present", "past_key_values"), t]));
      return argmaxRows(out.logits!);
    };
    let next = await step(rows);
    const tokens = rows.map(() => [] as number[]);
    const t0 = performance.now();
    for (let s = 0; s < newTokens; s++) {
      next.forEach((t, r) => tokens[r]!.push(t));
      if (s === newTokens - 1) break;
      length++;
      next = await step(next.map((t) => [t]));
    }
    return { tokens, seconds: (performance.now() - t0) / 1000 };
  };
  const rowsOut: (string | number)[][] = [];
  const out: unknown[] = [];
  for (const b of [1, 4, 16]) {
    const prompts = Array.from({ length: b }, (_, i) => [tokenizer.bosId, ...textOfTokens(tokenizer, promptTokens + 20, 500 + i).ids.slice(0, promptTokens)]);
    await decode([prompts[0]!]); // warm-up
    let seqSeconds = 0;
    const seqTokens: number[][] = [];
    for (const p of prompts) {
      const r = await decode([p]);
      seqSeconds += r.seconds;
      seqTokens.push(r.tokens[0]!);
    }
    const batched = await decode(prompts);
    const same = batched.tokens.every((t, i) => t.join() === seqTokens[i]!.join());
    const seqTps = (b * (newTokens - 1)) / seqSeconds;
    const batTps = (b * (newTokens - 1)) / batched.seconds;
    rowsOut.push([b, f1(seqTps), f1(batTps), `${f2(batTps / seqTps)}×`, same ? "yes" : "NO"]);
    out.push({ rows: b, sequentialTps: seqTps, batchedTps: batTps, sameTokens: same });
  }
  await model.dispose();
  table(
    `Batching: decode tok/s of B equal-length rows (prompt ${promptTokens + 1} tokens), one B-row forward vs B one-row forwards`,
    ["rows B", "sequential tok/s", "batched tok/s", "batched / sequential", "same greedy tokens"],
    rowsOut,
  );
  results.batching = out;
}

// ---------------------------------------------------------------------------------------------------------

const dir = await modelFolder();
const tokenizer = await Tokenizer.fromFile(join(dir, "tokenizer.json"));
console.log(`# bench-worker: ${dir} on ${device} (${dtype}), node ${process.version}, ${new Date().toISOString()}`);
console.log(`settings: prompt ${promptTokens} tokens, ${newTokens} new tokens, repeats ${repeats}, ORT threads ${threads || "default"}, worker CPU_SPIN ${cpuSpin ?? "default (off)"}, sampling ${opts.sampling}`);

const needsServers = ["single", "concurrency", "chat"].some((s) => sections.has(s));
if (needsServers) {
  const worker = await startWorker(dir);
  // A second worker that admits every session at once (batched decode steps on CPU).
  const maxC = Math.max(1, ...concurrencies, ...chatConcurrencies);
  const interleaved = maxC > 1 && (sections.has("concurrency") || sections.has("chat")) ? await startWorker(dir, maxC) : null;
  const withoutReuse = sections.has("chat") ? await startWorker(dir, 1, { PREFIX_REUSE: "off" }) : null;
  const generator = await loadPipeline(dir);
  try {
    if (sections.has("single")) await singleStream(worker, generator, tokenizer);
    if (sections.has("concurrency")) await concurrency(worker, interleaved, maxC, generator, tokenizer);
    if (withoutReuse) await chat(worker, withoutReuse, interleaved, generator, tokenizer);
  } finally {
    await worker.stop();
    await interleaved?.stop();
    await withoutReuse?.stop();
  }
}
if (sections.has("batching")) await batching(dir, tokenizer);
if (opts.json) writeFileSync(opts.json, `${JSON.stringify(results, null, 2)}\n`);
process.exit(0);
