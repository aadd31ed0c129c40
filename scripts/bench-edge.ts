/**
 * Edge benchmark: what the gateway adds on top of calling a GPU worker directly, measured in one run on
 * loopback, and the gateway's own CPU time per request.
 *
 *   npx tsx scripts/bench-edge.ts [--requests 40] [--concurrency 1,16] [--max-tokens 64] [--edge-port 8797]
 *                                 [--miniflare-port 8798] [--miniflare-nolimit-port 8799]
 *                                 [--pass-through-port 8800] [--skip-wrangler-dev] [--verbose]
 *
 * 1. Latency. A GPU worker (tiny random model on CPU, or MODEL_DIR; one generation at a time and one
 *    onnxruntime thread unless CPU_THREADS / MAX_RUNNING say otherwise, so that on a small machine the CPU
 *    model does not take the cores the edge under test needs: in production the two never share a machine)
 *    and one bundle of the Worker (as `wrangler deploy` builds it) served three times: under `wrangler dev`
 *    (offline), and by Miniflare directly on its own loopback socket, which is the same workerd without
 *    wrangler's proxy Worker in front (production has no such proxy), once with the local rate-limit
 *    simulation and once without it (see startMiniflare). Next to them, workerd's own floor: a pass-through
 *    Worker that only forwards the request (startPassThrough). Each round sends the same chat turn directly
 *    as protocol v1 (`POST /v1/generate` with the prompt ids the edge would send, signed) and through each
 *    edge (`POST /v1/chat/completions`, streaming, API key), and through the same gateway code called
 *    in-process. All use greedy decoding, so the GPU does the same work. With one client the paths take
 *    turns request by request, each after a 20 ms pause; with more, in rounds of a quarter of the requests.
 *    Reported: time to first token (first token event / first content chunk) and time to the end of a full
 *    `--max-tokens` completion, p50 and p99, at 1 and 16 concurrent clients, with the edge/direct ratio and
 *    the added milliseconds; and `GET /healthz` on each workerd next to the GPU worker's, the runtime's cost
 *    for a route that does nothing.
 * 2. CPU. The same gateway code (functions/ behind src/edge/gateway.ts, in-memory services) runs in this
 *    process; `process.cpuUsage()` around each request gives its CPU time (the GPU worker is another
 *    process), for a short chat and for a 4k-token conversation, plus the tokenization share alone.
 *    Startup cost in workerd comes from `wrangler check startup` (see docs/benchmarks.md).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { handleChatFunction } from "../functions/chat.js";
import { handleHttpEndpoint } from "../functions/http-endpoint.js";
import { handleWebhookGenerate } from "../functions/webhook-generate.js";
import { buildChatPrompt } from "../src/edge/chat/prompt.js";
import { parseEdgeConfig } from "../src/edge/config.js";
import { createGateway } from "../src/edge/gateway.js";
import { memoryServices } from "../src/edge/memory-services.js";
import { Tokenizer } from "../src/llama/tokenizer.js";
import { loadDefaultTokenizer } from "../src/node/tokenizer-asset.js";
import { parseNdjsonStream, signWorkerRequest } from "../src/protocol/index.js";
import { bundleWorker, ensureDevModel, ROOT, startGpuWorker, startWranglerDev, waitForHttp } from "./dev-stack.js";
import { percentile } from "./bench-stats.js";

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "40" },
    concurrency: { type: "string", default: "1,16" },
    "max-tokens": { type: "string", default: "64" },
    "edge-port": { type: "string", default: "8797" },
    "miniflare-port": { type: "string", default: "8798" },
    /** The second Miniflare instance, without the local rate-limit simulation. */
    "miniflare-nolimit-port": { type: "string", default: "8799" },
    /** The pass-through Worker (workerd's own floor). */
    "pass-through-port": { type: "string", default: "8800" },
    /** Leaves out the wrangler dev row (its proxy and file watcher then do not share the machine's cores). */
    "skip-wrangler-dev": { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
  },
});
const REQUESTS = Number(args.requests);
const CONCURRENCY = args.concurrency!.split(",").map(Number);
const MAX_TOKENS = Number(args["max-tokens"]);
const MODEL = "meta-llama/Llama-3.1-8B-Instruct";
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

interface Sample {
  ttft: number;
  total: number;
}

/** One way of reaching the GPU worker that is compared with calling it directly. */
interface EdgePath {
  where: string;
  /** Base URL of an HTTP edge (its /healthz is measured too); null for the in-process gateway. */
  url: string | null;
  run: () => Promise<Sample>;
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 20));

/** The slice of Miniflare's API used here (the class comes from wrangler's own copy, see startMiniflare). */
interface MiniflareInstance {
  ready: Promise<URL>;
  dispose(): Promise<void>;
}

/**
 * Serves the bundled Worker with Miniflare on 127.0.0.1:`port`: clients reach workerd's own HTTP socket, with
 * no wrangler proxy Worker in between. Miniflare and the options come from wrangler's own copy: the workerd
 * binary is the one `wrangler dev` runs, and `unstable_getMiniflareWorkerOptions` turns wrangler.toml into
 * bindings exactly as `wrangler dev` does (Durable Objects with their SQLite flags, KV, queues and their
 * consumers, the rate limit, [vars]), so the two rows differ only by the proxy. `vars` override [vars] as the
 * env file does under wrangler dev; state is in memory.
 *
 * `rateLimiter: false` leaves out the RATE_LIMITER binding (the gateway then limits nothing). Locally the
 * binding is simulated by a call to a Durable Object that reads and writes SQLite before `limit()` answers;
 * Cloudflare's binding answers from counters cached on the machine the Worker runs on, without waiting on a
 * network request (developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit, "Performance"). The row
 * without it is therefore the local stand-in for what production's gateway adds.
 */
/** wrangler's own copy of Miniflare (so its workerd is the one `wrangler dev` runs) and that workerd's version. */
function wranglersMiniflare() {
  const fromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
  const { Miniflare, convertV4MiniflareOptions } = fromWrangler("miniflare") as {
    Miniflare: new (options: object) => MiniflareInstance;
    convertV4MiniflareOptions: (options: object) => object;
  };
  const workerdPackage = createRequire(fromWrangler.resolve("miniflare")).resolve("workerd/package.json");
  const workerd = (JSON.parse(readFileSync(workerdPackage, "utf8")) as { version: string }).version;
  // wrangler hands out Miniflare 4-style options; this Miniflare (5) takes its own shape, converted here.
  const start = async (options: object): Promise<MiniflareInstance> => {
    const mf = new Miniflare(convertV4MiniflareOptions(options));
    await mf.ready;
    return mf;
  };
  return { fromWrangler, start, workerd };
}

async function startMiniflare(bundle: string, vars: Record<string, string>, port: number, rateLimiter: boolean): Promise<{ mf: MiniflareInstance; workerd: string }> {
  const { fromWrangler, start, workerd } = wranglersMiniflare();
  const { unstable_getMiniflareWorkerOptions } = fromWrangler("wrangler") as typeof import("wrangler");
  const { modulesRules: _rules, ratelimits, ...workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml")).workerOptions;
  // Miniflare 5 takes the module list rather than rules: the entry, and the bundle's `*.bin` files as Data
  // modules (wrangler.toml's rule; the tokenizer asset is the only one).
  const dir = dirname(bundle);
  const modules = [
    { type: "ESModule", path: bundle },
    ...readdirSync(dir)
      .filter((file) => file.endsWith(".bin"))
      .map((file) => ({ type: "Data", path: join(dir, file) })),
  ];
  const mf = await start({
    host: "127.0.0.1",
    port,
    workers: [
      {
        ...workerOptions,
        ...(rateLimiter ? { ratelimits } : {}),
        name: "llama-edge",
        bindings: { ...(workerOptions.bindings as Record<string, unknown> | undefined), ...vars },
        modules,
        modulesRoot: dir,
      },
    ],
  });
  return { mf, workerd };
}

/**
 * workerd's floor for this traffic: a Worker that only forwards each request to the GPU worker and returns its
 * body as it streams (no parsing, no re-framing), in the same Miniflare and workerd as the gateway rows.
 */
function startPassThrough(upstream: string, port: number): Promise<MiniflareInstance> {
  return wranglersMiniflare().start({
    host: "127.0.0.1",
    port,
    workers: [
      {
        name: "pass-through",
        modules: true,
        compatibilityDate: "2026-11-01",
        bindings: { UPSTREAM: upstream },
        script: `export default {
  fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.UPSTREAM + url.pathname, { method: request.method, headers: request.headers, body: request.body });
  },
};`,
      },
    ],
  });
}

/** One generation asked of the GPU worker directly, timed like a client would. */
async function direct(url: string, secret: string, ids: number[]): Promise<Sample> {
  const body = JSON.stringify({
    version: 1,
    request_id: `bench-${randomBytes(8).toString("hex")}`,
    prompt_token_ids: ids,
    sampling: { max_new_tokens: MAX_TOKENS, temperature: 0 },
  });
  const started = performance.now();
  const headers = await signWorkerRequest(secret, { method: "POST", path: "/v1/generate", body });
  const res = await fetch(`${url}/v1/generate`, { method: "POST", body, headers: { ...headers, "content-type": "application/json" } });
  let ttft = NaN;
  for await (const event of parseNdjsonStream(res.body!)) {
    if (event.type === "token" && Number.isNaN(ttft)) ttft = performance.now() - started;
  }
  return { ttft, total: performance.now() - started };
}

function chatRequest(url: string, key: string, messages: unknown, stream: boolean, maxTokens = MAX_TOKENS): Request {
  return new Request(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages, max_tokens: maxTokens, temperature: 0, stream }),
  });
}

/** The same turn through the edge, streaming: `send` is fetch (workerd) or the gateway called in-process. */
async function viaEdge(send: (request: Request) => Promise<Response>, url: string, key: string, messages: unknown): Promise<Sample> {
  const request = chatRequest(url, key, messages, true);
  const started = performance.now();
  const res = await send(request);
  if (!res.ok) throw new Error(`edge answered ${res.status}: ${await res.text()}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let ttft = NaN;
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += value;
    if (Number.isNaN(ttft) && /"content":"[^"]/.test(buffer)) ttft = performance.now() - started;
  }
  if (!buffer.includes("data: [DONE]")) throw new Error(`edge stream did not finish: ${buffer.slice(-300)}`);
  return { ttft, total: performance.now() - started };
}

async function runConcurrent(concurrency: number, count: number, once: () => Promise<Sample>): Promise<Sample[]> {
  const samples: Sample[] = [];
  let left = count;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        samples.push(await once());
      }
    }),
  );
  return samples;
}

/**
 * A conversation of about `target` tokens, alternating user/assistant turns made of the paragraphs of this
 * repository's documentation (real English, Markdown and code, so the tokenizer's caches see realistic text).
 */
function longConversation(target: number, count: (messages: { role: string; content: string }[]) => number) {
  const paragraphs = ["README.md", "docs/architecture.md", "docs/protocol.md"]
    .flatMap((f) => (existsSync(join(ROOT, f)) ? readFileSync(join(ROOT, f), "utf8").split(/\n\n+/) : []))
    .filter((p) => p.trim().length > 40);
  if (paragraphs.length === 0) throw new Error("no documentation text found to build the conversation from");
  const messages: { role: string; content: string }[] = [{ role: "system", content: "You are a careful assistant." }];
  for (let i = 0; count(messages) < target - 60; i++) {
    messages.push({ role: messages.length % 2 === 1 ? "user" : "assistant", content: paragraphs[i % paragraphs.length]! });
  }
  while (count(messages) > target) messages.splice(1, 1);
  if (messages.at(-1)!.role !== "user") messages.push({ role: "user", content: "Summarise." });
  return messages;
}

function cpuMs(fn: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  return fn().then(() => {
    const d = process.cpuUsage(before);
    return (d.user + d.system) / 1000;
  });
}

async function main(): Promise<void> {
  const tokenizer = await loadDefaultTokenizer();
  const modelDir = process.env.MODEL_DIR || (await ensureDevModel(say));
  const secret = randomBytes(24).toString("hex");
  const gpu = await startGpuWorker(
    {
      MODEL_DIR: modelDir,
      PORT: "0",
      WORKER_SECRET: secret,
      CPU_THREADS: process.env.CPU_THREADS ?? "1",
      MAX_RUNNING: process.env.MAX_RUNNING ?? "1",
    },
    (l) => say(`[gpu] ${l}`),
  );
  const key = `sk-bench-${randomBytes(8).toString("hex")}`;
  const keyHash = createHash("sha256").update(key).digest("hex");
  // Request log lines off: under wrangler dev each one is ~5 ms of local I/O that production does not pay on
  // the request path (docs/benchmarks.md).
  const vars = { GPU_WORKERS: gpu.url, WORKER_SECRET: secret, API_KEY_HASHES: keyHash, LOG_REQUESTS: "off" };
  const port = Number(args["edge-port"]);
  const edgeUrl = `http://127.0.0.1:${port}`;
  const bundle = await bundleWorker(join(ROOT, "build", "edge-bench"));
  const wrangler = args["skip-wrangler-dev"] ? null : startWranglerDev(vars, port, !args.verbose, { bundle });
  const mfPort = Number(args["miniflare-port"]);
  const mfUrl = `http://127.0.0.1:${mfPort}`;
  const mfNoLimitUrl = `http://127.0.0.1:${Number(args["miniflare-nolimit-port"])}`;
  const passUrl = `http://127.0.0.1:${Number(args["pass-through-port"])}`;
  const miniflares: MiniflareInstance[] = [];
  const cleanup = () => {
    wrangler?.kill("SIGTERM");
    gpu.child.kill("SIGTERM");
  };
  process.on("exit", cleanup);
  try {
    const started = await startMiniflare(bundle, vars, mfPort, true);
    miniflares.push(started.mf);
    miniflares.push((await startMiniflare(bundle, vars, Number(args["miniflare-nolimit-port"]), false)).mf);
    miniflares.push(await startPassThrough(gpu.url, Number(args["pass-through-port"])));
    if (wrangler) await waitForHttp(`${edgeUrl}/healthz`, 120_000);
    await waitForHttp(`${mfUrl}/healthz`, 30_000);
    await waitForHttp(`${mfNoLimitUrl}/healthz`, 30_000);
    await waitForHttp(`${passUrl}/healthz`, 30_000);
    const messages = [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "Write a short poem about the sea." },
    ];
    const ids = buildChatPrompt(tokenizer, { messages: messages as never }).ids;
    say(`GPU worker ${gpu.url}, edge ${edgeUrl} (wrangler dev), ${mfUrl} and ${mfNoLimitUrl} (Miniflare with and without the rate limit, workerd ${started.workerd}), prompt ${ids.length} tokens, ${MAX_TOKENS}-token completions`);
    // The same gateway code in this process (in-memory services), to separate it from the local HTTP stack.
    const config = parseEdgeConfig(vars);
    const services = memoryServices({ config, tokenizer });
    const gateway = createGateway({ http: handleHttpEndpoint, chat: handleChatFunction, webhook: handleWebhookGenerate });
    const overHttp = (r: Request) => fetch(r);
    const inProcess = (r: Request) => gateway(r, services);
    const viaGateway = (send: (r: Request) => Promise<Response>, url: string) => () => viaEdge(send, url, key, messages);
    // The paths measured against the direct call, in the order each round visits them. The pass-through Worker
    // is workerd's own floor: a Worker that forwards the signed protocol request and returns the worker's body.
    const edges: EdgePath[] = [
      ...(wrangler ? [{ where: "workerd (wrangler dev)", url: edgeUrl, run: viaGateway(overHttp, edgeUrl) }] : []),
      { where: "workerd (Miniflare, no proxy)", url: mfUrl, run: viaGateway(overHttp, mfUrl) },
      { where: "workerd (Miniflare, no proxy, no local rate-limit simulation)", url: mfNoLimitUrl, run: viaGateway(overHttp, mfNoLimitUrl) },
      { where: "in-process (Node)", url: null, run: viaGateway(inProcess, "http://edge.local") },
      { where: "workerd floor: a pass-through Worker (Miniflare), not the gateway", url: passUrl, run: () => direct(passUrl, secret, ids) },
    ];
    // Warm every path (tokenizer construction, JIT, connections) before measuring.
    for (let i = 0; i < 3; i++) {
      await direct(gpu.url, secret, ids);
      for (const edge of edges) await edge.run();
    }

    const rows: string[] = [];
    // The local runtime's own cost per request: a route that does nothing, next to the worker's /healthz.
    const ping = async (url: string): Promise<Sample> => {
      const started = performance.now();
      await (await fetch(url)).text();
      const ms = performance.now() - started;
      return { ttft: ms, total: ms };
    };
    const httpEdges = edges.filter((edge): edge is EdgePath & { url: string } => edge.url !== null);
    const pd: Sample[] = [];
    const pe = httpEdges.map(() => [] as Sample[]);
    for (let i = 0; i < REQUESTS; i++) {
      pd.push(await ping(`${gpu.url}/healthz`));
      for (const [j, edge] of httpEdges.entries()) pe[j]!.push(await ping(`${edge.url}/healthz`));
    }
    for (const p of [50, 99]) {
      const dv = percentile(pd.map((s) => s.total), p);
      for (const [j, edge] of httpEdges.entries()) {
        const ev = percentile(pe[j]!.map((s) => s.total), p);
        rows.push(`| GET /healthz (no work: the HTTP stack alone), edge ${edge.where} | 1 | p${p} | ${dv.toFixed(1)} | ${ev.toFixed(1)} | ${(ev - dv).toFixed(1)} | ${(ev / dv).toFixed(3)} |`);
      }
    }
    for (const c of CONCURRENCY) {
      const d: Sample[] = [];
      const e = edges.map(() => [] as Sample[]);
      if (c === 1) {
        // One client: one request per path in turn, each after a pause (a client's think time, and the end of
        // the previous request's background work: cancel, /readyz refresh), so drift and load hit all paths.
        for (let i = 0; i < REQUESTS; i++) {
          await pause();
          d.push(await direct(gpu.url, secret, ids));
          for (const [j, edge] of edges.entries()) {
            await pause();
            e[j]!.push(await edge.run());
          }
        }
      } else {
        const rounds = 4;
        const perRound = Math.ceil(REQUESTS / rounds);
        for (let r = 0; r < rounds; r++) {
          d.push(...(await runConcurrent(c, perRound, () => direct(gpu.url, secret, ids))));
          for (const [j, edge] of edges.entries()) e[j]!.push(...(await runConcurrent(c, perRound, edge.run)));
        }
      }
      for (const [metric, pick] of [["time to first token", (s: Sample) => s.ttft], [`full ${MAX_TOKENS}-token completion`, (s: Sample) => s.total]] as const) {
        for (const p of [50, 99]) {
          const dv = percentile(d.map(pick), p);
          for (const [j, edge] of edges.entries()) {
            const ev = percentile(e[j]!.map(pick), p);
            rows.push(`| ${metric}, edge ${edge.where} | ${c} | p${p} | ${dv.toFixed(1)} | ${ev.toFixed(1)} | ${(ev - dv).toFixed(1)} | ${(ev / dv).toFixed(3)} |`);
          }
        }
      }
      say(`concurrency ${c}: ${d.length} requests per path`);
    }

    // CPU time of the gateway itself, in this process.
    say("measuring the gateway's CPU time in this process…");
    const conversation = longConversation(4000, (m) => buildChatPrompt(tokenizer, { messages: m as never }).ids.length);
    const convTokens = buildChatPrompt(tokenizer, { messages: conversation as never }).ids.length;
    const request = (msgs: unknown) => chatRequest("http://edge.local", key, msgs, false, 1);
    const cpu = async (msgs: unknown, n: number) => {
      const samples: number[] = [];
      for (let i = 0; i < n; i++) {
        const req = request(msgs);
        samples.push(
          await cpuMs(async () => {
            const res = await gateway(req, services);
            if (res.status !== 200) throw new Error(`gateway answered ${res.status}: ${await res.text()}`);
            await res.text();
          }),
        );
      }
      return samples;
    };
    const coldTokenizer = await cpuMs(async () => {
      (await loadDefaultTokenizer()).encode("warm", { bos: false, eos: false });
    });
    say(`conversation of ${convTokens} tokens built`);
    await cpu(messages, 5);
    const shortCpu = await cpu(messages, 40);
    const longCpu = await cpu(conversation, 20);
    const tokenizeOnly: number[] = [];
    for (let i = 0; i < 20; i++) tokenizeOnly.push(await cpuMs(async () => void buildChatPrompt(tokenizer, { messages: conversation as never })));
    // First sight of the text: a fresh tokenizer (its BPE piece cache empty), as in a new isolate.
    const asset = tokenizer.toData();
    const tokenizeCold: number[] = [];
    for (let i = 0; i < 20; i++) {
      tokenizeCold.push(await cpuMs(async () => void buildChatPrompt(Tokenizer.fromData(asset), { messages: conversation as never })));
    }

    const out = [
      `Edge vs direct GPU worker, loopback, ${REQUESTS} requests per path and concurrency, greedy ${MAX_TOKENS}-token completions, prompt ${ids.length} tokens, workerd ${started.workerd} (${new Date().toISOString().slice(0, 10)}).`,
      "",
      "| metric | clients | pct | direct ms | edge ms | added ms | edge/direct |",
      "| --- | --- | --- | --- | --- | --- | --- |",
      ...rows,
      "",
      "Gateway CPU time per request (Node, same code, in-memory services; GPU worker in another process):",
      "",
      "| request | p50 ms | p99 ms |",
      "| --- | --- | --- |",
      `| short chat (${ids.length} prompt tokens), whole request | ${percentile(shortCpu, 50).toFixed(2)} | ${percentile(shortCpu, 99).toFixed(2)} |`,
      `| ${convTokens}-token conversation, whole request | ${percentile(longCpu, 50).toFixed(2)} | ${percentile(longCpu, 99).toFixed(2)} |`,
      `| ${convTokens}-token conversation, chat format + tokenization only (history seen before) | ${percentile(tokenizeOnly, 50).toFixed(2)} | ${percentile(tokenizeOnly, 99).toFixed(2)} |`,
      `| ${convTokens}-token conversation, chat format + tokenization only (fresh tokenizer, empty cache) | ${percentile(tokenizeCold, 50).toFixed(2)} | ${percentile(tokenizeCold, 99).toFixed(2)} |`,
      `| tokenizer construction from the asset + first encode (cold) | ${coldTokenizer.toFixed(2)} | |`,
    ];
    process.stdout.write(out.join("\n") + "\n");
  } finally {
    for (const mf of miniflares) await mf.dispose();
    cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    say(`failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
