/**
 * Webhook-jobs benchmark: how fast the edge accepts and delivers generation jobs, end to end on loopback,
 * against the synchronous endpoint doing the same generations in the same run.
 *
 *   npx tsx scripts/bench-jobs.ts [--jobs 200] [--clients 16] [--max-tokens 16] [--fail-every 5]
 *
 * A GPU worker (tiny random model on CPU, or MODEL_DIR), the Worker under `wrangler dev` (workerd, offline,
 * local queue + Durable Objects) and a real HTTP receiver (test/edge/jobs/receiver.ts) are started. The
 * receiver verifies every delivery's signature with `standardwebhooks` and records it by `webhook-id`.
 *
 * 1. Jobs: `--jobs` `POST /v1/jobs` from `--clients` concurrent submitters, as fast as they are accepted.
 *    Reported: jobs/s accepted (first submit → last 202) and delivered (first submit → last verified
 *    delivery), submit → verified-delivery delay p50/p99, lost jobs (accepted, never delivered within the
 *    time limit) and duplicated deliveries (the same `webhook-id` received twice, counted separately).
 * 2. With failures: the same, with the receiver answering 500 to the first attempt of every `--fail-every`-th
 *    job (1 s back-off), so retries are in the figures; lost and duplicated are reported again.
 * 3. Peer: the same generations through `POST /v1/chat/completions` (non-streaming), from `--clients`
 *    clients and from 5 (the consumer's batch: locally the queue runs one batch at a time, so that is the
 *    jobs' GPU concurrency): requests/s and latency p50/p99, with the jobs/sync throughput ratio.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";
import { startReceiver, type RecordedRequest } from "../test/edge/jobs/receiver.js";
import { bundleWorker, ensureDevModel, ROOT, startGpuWorker, startWranglerDev, waitForHttp } from "./dev-stack.js";
import { percentile } from "./bench-stats.js";

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "200" },
    clients: { type: "string", default: "16" },
    "max-tokens": { type: "string", default: "16" },
    "fail-every": { type: "string", default: "5" },
    "edge-port": { type: "string", default: "8798" },
    "timeout-s": { type: "string", default: "300" },
    /** Show the Worker's own log lines (one JSON line per request and job step). */
    verbose: { type: "boolean", default: false },
  },
});
const JOBS = Number(args.jobs);
const CLIENTS = Number(args.clients);
const MAX_TOKENS = Number(args["max-tokens"]);
const FAIL_EVERY = Number(args["fail-every"]);
const TIMEOUT_MS = Number(args["timeout-s"]) * 1000;
const MODEL = "meta-llama/Llama-3.1-8B-Instruct";
/** wrangler.toml's max_batch_size for the job queue: locally, one batch runs at a time. */
const CONSUMER_BATCH = 5;
const say = (line: string) => process.stderr.write(`[bench-jobs] ${line}\n`);

const messages = (i: number) => [{ role: "user", content: `Job ${i}: write a line about queues.` }];

async function pool<T>(count: number, clients: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

interface PhaseResult {
  accepted: number;
  /** Round trip of each POST /v1/jobs (what the caller waits for). */
  submitMs: number[];
  acceptSeconds: number;
  deliverSeconds: number;
  delays: number[];
  lost: number;
  duplicates: number;
  invalidSignatures: number;
  failuresInjected: number;
}

/**
 * `wrangler dev`, offline, serving a frozen build of the Worker: `wrangler dev` on the sources rebuilds and
 * reloads on every file change, and a reload drops the local queue's in-memory messages, which would be counted
 * as lost jobs (in production Queues are durable, and the jobs' watchdog alarms re-queue them anyway). State
 * goes to a fresh directory.
 */
async function startWrangler(vars: Record<string, string>, port: number, verbose: boolean): Promise<ChildProcess> {
  const dir = join(ROOT, "build", "bench-jobs");
  rmSync(dir, { recursive: true, force: true });
  const bundle = await bundleWorker(join(dir, "worker"));
  return startWranglerDev(vars, port, !verbose, { bundle, persistTo: join(dir, "state") });
}

async function main(): Promise<void> {
  const modelDir = process.env.MODEL_DIR || (await ensureDevModel(say));
  const workerSecret = randomBytes(24).toString("hex");
  const gpu = await startGpuWorker({ MODEL_DIR: modelDir, PORT: "0", WORKER_SECRET: workerSecret, QUEUE_CAPACITY: "64" }, (l) => say(`[gpu] ${l}`));
  const receiver = await startReceiver();
  const signingSecret = `whsec_${randomBytes(32).toString("base64")}`;
  const verifier = new Webhook(signingSecret);
  const key = `sk-bench-${randomBytes(8).toString("hex")}`;
  const vars = {
    GPU_WORKERS: gpu.url,
    WORKER_SECRET: workerSecret,
    API_KEY_HASHES: createHash("sha256").update(key).digest("hex"),
    WEBHOOK_DEV_MODE: "true",
    WEBHOOK_RETRY_BASE_MS: "1000",
    WEBHOOK_RETRY_MAX_MS: "1000",
    WEBHOOK_SECRETS: JSON.stringify({ default: { secrets: [signingSecret], owners: ["*"] } }),
    // As in bench-edge: under wrangler dev each request log line costs milliseconds on the request path.
    LOG_REQUESTS: "off",
  };
  const port = Number(args["edge-port"]);
  const edgeUrl = `http://127.0.0.1:${port}`;
  const wrangler = await startWrangler(vars, port, args.verbose === true);
  const cleanup = () => {
    wrangler.kill("SIGTERM");
    gpu.child.kill("SIGTERM");
    void receiver.close();
  };
  process.on("exit", cleanup);

  // Every request the receiver gets, verified as a receiver would, by webhook-id (arrival times).
  const arrivals = new Map<string, number[]>();
  let invalid = 0;
  const now = () => performance.timeOrigin + performance.now();
  receiver.onRequest = (_endpoint: string, request: RecordedRequest) => {
    try {
      verifier.verify(request.body, request.headers);
    } catch {
      invalid++;
      return;
    }
    const id = request.headers["webhook-id"]!;
    const list = arrivals.get(id) ?? [];
    list.push(now());
    arrivals.set(id, list);
  };
  const createEndpoint = async (responses: unknown[] = []): Promise<string> =>
    ((await (await fetch(`${receiver.url}/_control/endpoints`, { method: "POST", body: JSON.stringify({ responses }) })).json()) as { url: string }).url;

  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const body = (i: number, url: string) => JSON.stringify({ model: MODEL, messages: messages(i), max_tokens: MAX_TOKENS, temperature: 0, webhook: { url } });

  interface Submitted {
    webhookId: string;
    at: number;
    /** Index of the request that the receiver answers 2xx (1 when the first attempt is made to fail). */
    successIndex: number;
  }
  const deliveredAt = (s: Submitted) => arrivals.get(s.webhookId)?.[s.successIndex];

  async function phase(label: string, failEvery: number): Promise<PhaseResult> {
    const ok = await createEndpoint();
    const submitted: Submitted[] = [];
    const submitMs: number[] = [];
    invalid = 0;
    const start = now();
    let lastAccepted = start;
    await pool(JOBS, CLIENTS, async (i) => {
      // Every failEvery-th job gets its own endpoint that answers its first delivery with 500.
      const failFirst = failEvery > 0 && i % failEvery === 0;
      const url = failFirst ? await createEndpoint([{ status: 500 }]) : ok;
      const at = now();
      const res = await fetch(`${edgeUrl}/v1/jobs`, { method: "POST", headers, body: body(i, url) });
      const json = (await res.json()) as { id?: string };
      if (res.status !== 202 || json.id === undefined) throw new Error(`${label}: submit ${i} answered ${res.status}: ${JSON.stringify(json)}`);
      lastAccepted = Math.max(lastAccepted, now());
      submitMs.push(now() - at);
      submitted.push({ webhookId: `msg_${json.id.slice(4)}`, at, successIndex: failFirst ? 1 : 0 });
    });
    say(`${label}: ${submitted.length} jobs accepted in ${((lastAccepted - start) / 1000).toFixed(2)} s; waiting for deliveries…`);
    const deadline = Date.now() + TIMEOUT_MS;
    while (submitted.some((s) => deliveredAt(s) === undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // A duplicate (a retry racing a success) would arrive within a back-off: wait one more.
    await new Promise((r) => setTimeout(r, 1_500));
    const delivered = submitted.filter((s) => deliveredAt(s) !== undefined);
    return {
      accepted: submitted.length,
      submitMs,
      acceptSeconds: (lastAccepted - start) / 1000,
      deliverSeconds: (Math.max(...delivered.map((s) => deliveredAt(s)!)) - start) / 1000,
      delays: delivered.map((s) => deliveredAt(s)! - s.at),
      lost: submitted.length - delivered.length,
      duplicates: submitted.reduce((n, s) => n + Math.max(0, (arrivals.get(s.webhookId)?.length ?? 0) - s.successIndex - 1), 0),
      invalidSignatures: invalid,
      failuresInjected: submitted.filter((s) => s.successIndex > 0).length,
    };
  }

  try {
    await waitForHttp(`${edgeUrl}/healthz`, 120_000);
    say(`GPU worker ${gpu.url}, edge ${edgeUrl} (wrangler dev), receiver ${receiver.url}; ${JOBS} jobs, ${CLIENTS} clients, ${MAX_TOKENS}-token completions`);
    // Warm up: tokenizer, Durable Objects, queue consumer, GPU.
    const warm = await createEndpoint();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${edgeUrl}/v1/jobs`, { method: "POST", headers, body: body(-1 - i, warm) });
      const json = (await res.json()) as { id?: string };
      if (json.id === undefined) throw new Error(`warm-up submit answered ${res.status}: ${JSON.stringify(json)}`);
      const deadline = Date.now() + 60_000;
      while (!arrivals.has(`msg_${json.id.slice(4)}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }

    // One job at a time: the delay of a job that waits behind nobody.
    const single = await createEndpoint();
    const alone: number[] = [];
    for (let i = 0; i < 10; i++) {
      const at = now();
      const res = await fetch(`${edgeUrl}/v1/jobs`, { method: "POST", headers, body: body(1000 + i, single) });
      const json = (await res.json()) as { id?: string };
      if (json.id === undefined) throw new Error(`single submit answered ${res.status}: ${JSON.stringify(json)}`);
      const webhookId = `msg_${json.id.slice(4)}`;
      const deadline = Date.now() + 60_000;
      while (!arrivals.has(webhookId) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      alone.push(arrivals.get(webhookId)![0]! - at);
    }

    const clean = await phase("jobs", 0);
    const flaky = await phase(`jobs, 1 in ${FAIL_EVERY} first attempts failing`, FAIL_EVERY);

    // Peer: the same generations, synchronously: from as many clients as submitted the jobs, and from as
    // many as the consumer runs at once (one batch of 5 locally), which is the same GPU concurrency.
    const sync: { clients: number; seconds: number; latency: number[] }[] = [];
    for (const clients of [CLIENTS, CONSUMER_BATCH]) {
      const started = performance.now();
      const latency = await pool(JOBS, clients, async (i) => {
        const t = performance.now();
        const res = await fetch(`${edgeUrl}/v1/chat/completions`, { method: "POST", headers, body: JSON.stringify({ model: MODEL, messages: messages(i), max_tokens: MAX_TOKENS, temperature: 0 }) });
        if (res.status !== 200) throw new Error(`sync ${i} answered ${res.status}: ${await res.text()}`);
        await res.json();
        return performance.now() - t;
      });
      sync.push({ clients, seconds: (performance.now() - started) / 1000, latency });
    }

    const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
    const row = (label: string, r: PhaseResult) =>
      `| ${label} | ${r.accepted} | ${fmt(r.accepted / r.acceptSeconds)} | ${fmt(percentile(r.submitMs, 50), 0)} / ${fmt(percentile(r.submitMs, 99), 0)} | ${fmt((r.accepted - r.lost) / r.deliverSeconds)} | ${fmt(percentile(r.delays, 50), 0)} | ${fmt(percentile(r.delays, 99), 0)} | ${r.lost} | ${r.duplicates} | ${r.invalidSignatures} |`;
    const jobsRate = (clean.accepted - clean.lost) / clean.deliverSeconds;
    const out = [
      `Webhook jobs, loopback, wrangler dev (local queue + Durable Objects), tiny model on CPU, ${JOBS} jobs from ${CLIENTS} clients, greedy ${MAX_TOKENS}-token chat completions (${new Date().toISOString().slice(0, 10)}).`,
      "",
      "| run | jobs | accepted/s | POST /v1/jobs p50 / p99 ms | delivered/s | submit→verified delivery p50 ms | p99 ms | lost | duplicated | bad signatures |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
      `| one job at a time (10 jobs) | 10 | | | | ${fmt(percentile(alone, 50), 0)} | ${fmt(percentile(alone, 99), 0)} | | | |`,
      row("jobs, receiver always 200", clean),
      row(`jobs, first attempt of ${flaky.failuresInjected} jobs answered 500`, flaky),
      "",
      "Peer in the same run: the same generations through `POST /v1/chat/completions` (non-streaming).",
      "",
      "| path | completed/s | latency p50 ms | p99 ms | jobs delivered/s ÷ completed/s |",
      "| --- | --- | --- | --- | --- |",
      ...sync.map(
        (p) =>
          `| synchronous, ${p.clients} clients | ${fmt(JOBS / p.seconds)} | ${fmt(percentile(p.latency, 50), 0)} | ${fmt(percentile(p.latency, 99), 0)} | ${fmt(jobsRate / (JOBS / p.seconds), 2)} |`,
      ),
    ];
    process.stdout.write(out.join("\n") + "\n");
  } finally {
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
