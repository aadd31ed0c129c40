/**
 * The worker as a service: authentication, input validation, queueing and 429, cancellation (endpoint,
 * disconnect, deadline), graceful shutdown and start-up refusals. Real worker processes on CPU.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  WorkerHttpError,
  createWorkerClient,
  parseNdjsonStream,
  signWorkerRequest,
  type WorkerEvent,
} from "../../src/protocol/index.js";
import { configFromEnv } from "../../src/gpu/config.js";
import { cpuSessionOptions } from "../../src/gpu/cpu-session-options.js";
import { checkDevice, inspectModelFolder } from "../../src/gpu/model-folder.js";
import { startWorker, startWorkerExpectingFailure, type WorkerProcess } from "./helpers/worker-process.js";
import { tinyWorkerModel } from "./helpers/tiny-model.js";

let modelDir: string;
let worker: WorkerProcess;

beforeAll(async () => {
  modelDir = (await tinyWorkerModel()).dir;
  worker = await startWorker({ MODEL_DIR: modelDir, QUEUE_CAPACITY: "1", MAX_RUNNING: "1", KEEPALIVE_MS: "100" });
});
afterAll(async () => {
  await worker?.stop();
});

let n = 0;
const rid = () => `svc-${++n}`;
const PROMPT = [128000, 9906, 1917];
/** Greedy generation long enough to still be running when the test acts on it. */
const longRequest = (id: string) => ({
  version: 1 as const,
  request_id: id,
  prompt_token_ids: PROMPT,
  sampling: { max_new_tokens: 4000, temperature: 0, stop_token_ids: [] },
});

async function errorOf(res: Response) {
  return ((await res.json()) as { error: { code: string; field?: string; message: string } }).error;
}

/** Opens a generate stream and returns an iterator over its events. */
async function openStream(body: unknown, signal?: AbortSignal) {
  const res = await worker.request("/v1/generate", { body, signal });
  expect(res.status).toBe(200);
  return parseNdjsonStream(res.body!)[Symbol.asyncIterator]();
}

async function nextOfType(it: AsyncIterator<WorkerEvent>, type: WorkerEvent["type"]): Promise<WorkerEvent> {
  for (;;) {
    const { value, done } = await it.next();
    if (done) throw new Error(`stream ended before a ${type} event`);
    if (value.type === type) return value;
  }
}

async function waitFor<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("authentication", () => {
  it("serves /healthz unsigned and rejects every other unsigned, forged or stale request with 401", async () => {
    expect((await worker.request("/healthz", { sign: false })).status).toBe(200);
    const unsigned = await worker.request("/readyz", { sign: false });
    expect(unsigned.status).toBe(401);
    expect((await errorOf(unsigned)).code).toBe("unauthorized");
    expect((await worker.request("/metrics", { sign: false })).status).toBe(401);

    const body = JSON.stringify({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling: { max_new_tokens: 1 } });
    const forged = await signWorkerRequest("not-the-worker-secret", { method: "POST", path: "/v1/generate", body });
    expect((await worker.request("/v1/generate", { body, sign: false, headers: forged })).status).toBe(401);

    // Signed for another body: the signature covers the bytes.
    const other = await signWorkerRequest(worker.secret, { method: "POST", path: "/v1/generate", body: `${body} ` });
    expect((await worker.request("/v1/generate", { body, sign: false, headers: other })).status).toBe(401);

    const stale = await signWorkerRequest(worker.secret, { method: "POST", path: "/v1/generate", body }, Date.now() / 1000 - 301);
    const res = await worker.request("/v1/generate", { body, sign: false, headers: stale });
    expect(res.status).toBe(401);
    expect((await errorOf(res)).message).toMatch(/300 s/);
    expect(stale[TIMESTAMP_HEADER]).toBeDefined();
    expect(stale[SIGNATURE_HEADER]).toMatch(/^v1=/);
  });

  it("logs no secret and no signature", () => {
    const text = JSON.stringify(worker.logs);
    expect(text).not.toContain(worker.secret);
    expect(text).not.toContain("v1=");
  });
});

describe("bad input gets a 4xx naming the field, and the worker keeps serving", () => {
  const base = { version: 1, request_id: "bad", prompt_token_ids: PROMPT };
  it.each([
    ["malformed JSON", "{\"version\":1,", 400, "invalid_json", undefined],
    ["a JSON array", "[]", 400, "invalid_request", undefined],
    ["an out-of-vocabulary id", { ...base, prompt_token_ids: [128000, 128256] }, 400, "token_out_of_vocabulary", "prompt_token_ids.1"],
    ["an out-of-vocabulary stop id", { ...base, sampling: { stop_token_ids: [999999] } }, 400, "token_out_of_vocabulary", "sampling.stop_token_ids.0"],
    ["prompt + max_new_tokens over the context", { ...base, sampling: { max_new_tokens: 4094 } }, 400, "context_length_exceeded", "sampling.max_new_tokens"],
    ["a prompt filling the context", { ...base, prompt_token_ids: new Array(4096).fill(1) }, 400, "context_length_exceeded", "prompt_token_ids"],
    ["an absurd temperature", { ...base, sampling: { temperature: 1e9 } }, 400, "invalid_request", "sampling.temperature"],
    ["a NaN-like top_p", { ...base, sampling: { top_p: "nan" } }, 400, "invalid_request", "sampling.top_p"],
    ["a negative top_k", { ...base, sampling: { top_k: -3 } }, 400, "invalid_request", "sampling.top_k"],
    ["a fractional token id", { ...base, prompt_token_ids: [1.5] }, 400, "invalid_request", "prompt_token_ids.0"],
    ["an unknown field", { ...base, sampling: { max_tokens: 5 } }, 400, "invalid_request", "sampling.max_tokens"],
    ["a body over the size limit", { ...base, prompt: "x".repeat(5 * 1024 * 1024) }, 413, "body_too_large", undefined],
  ])("%s", async (_what, body, status, code, field) => {
    const res = await worker.request("/v1/generate", { body });
    expect(res.status).toBe(status);
    const error = await errorOf(res);
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
    if (field) expect(error.message).toContain(field);
  });

  it("answers 404 for unknown routes and unknown request ids, and is still healthy", async () => {
    expect((await worker.request("/v2/nothing", { body: {} })).status).toBe(404);
    expect((await worker.request("/v1/requests/nope/cancel", { method: "POST", body: "" })).status).toBe(404);
    expect((await worker.readyz()).ready).toBe(true);
  });
});

describe("queue, cancellation and deadlines", () => {
  it("answers 429 with Retry-After when the queue is full; cancelling frees the slots", async () => {
    const running = await openStream(longRequest("q-running"));
    await nextOfType(running, "token");
    const queued = await openStream(longRequest("q-queued"));
    const ready = await worker.readyz();
    expect(ready).toMatchObject({ running: 1, queue_depth: 1, queue_capacity: 1, ready: false });
    expect(ready.load).toBeCloseTo(1, 5);
    // The queued stream sends keep-alives while it waits.
    expect((await queued.next()).value).toEqual({ type: "keepalive" });

    const refused = await worker.request("/v1/generate", { body: longRequest("q-refused") });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await errorOf(refused)).code).toBe("queue_full");
    // The protocol client surfaces the same refusal as a typed error.
    const client = createWorkerClient({ baseUrl: worker.url, secret: worker.secret });
    const thrown = await client.generate(longRequest("q-refused-2")).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(WorkerHttpError);
    expect(thrown).toMatchObject({ status: 429, body: { error: { code: "queue_full" } } });
    expect((thrown as WorkerHttpError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(await client.readyz()).toMatchObject({ ready: false, queue_depth: 1 });
    const duplicate = await worker.request("/v1/generate", { body: longRequest("q-queued") });
    expect((await errorOf(duplicate)).code).toBe("duplicate_request_id");

    // Cancel the queued one first: it ends without ever starting.
    expect((await worker.request("/v1/requests/q-queued/cancel", { method: "POST", body: "" })).status).toBe(200);
    const queuedDone = await nextOfType(queued, "done");
    expect(queuedDone).toMatchObject({ finish_reason: "cancelled", usage: { completion_tokens: 0 } });

    expect(await client.cancel("q-running")).toBe(true);
    expect(await client.cancel("never-existed")).toBe(false);
    const runningDone = await nextOfType(running, "done");
    expect(runningDone).toMatchObject({ finish_reason: "cancelled" });
    expect(runningDone.type === "done" && runningDone.usage.completion_tokens).toBeLessThan(4000);
    expect(await worker.readyz()).toMatchObject({ running: 0, queue_depth: 0, ready: true });
  });

  it("a client that disconnects mid-stream stops its generation and frees the slot", async () => {
    const controller = new AbortController();
    const stream = await openStream(longRequest("disconnect-me"), controller.signal);
    await nextOfType(stream, "token");
    await nextOfType(stream, "token");
    controller.abort();
    const ready = await waitFor(() => worker.readyz(), (r) => r.running === 0);
    expect(ready.running).toBe(0);
    const log = await waitFor(
      async () => worker.logs.find((l) => l.event === "request_done" && l.request_id === "disconnect-me"),
      (l) => l !== undefined,
    );
    expect(log).toMatchObject({ finish_reason: "cancelled" });
    expect(log!.completion_tokens as number).toBeLessThan(4000);
    // The next request is served at once.
    const next = await worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling: { max_new_tokens: 2, temperature: 0 } });
    expect(next.done.finish_reason).toBe("length");
    expect(next.start.queue_ms).toBeLessThan(1000);
  });

  it("stops at the request's deadline", async () => {
    const stream = await openStream({ ...longRequest("deadline"), deadline_ms: 300 });
    const done = await nextOfType(stream, "done");
    expect(done).toMatchObject({ finish_reason: "cancelled", error: { code: "deadline_exceeded" } });
    // Node timers may fire a millisecond early against performance.now(); the upper bound allows a loaded CI.
    expect(done.type === "done" && done.timings.total_ms).toBeGreaterThanOrEqual(295);
    expect(done.type === "done" && done.timings.total_ms).toBeLessThan(5000);
  });
});

describe("graceful shutdown", () => {
  it("on SIGTERM finishes the running generation, refuses new work, then exits 0", async () => {
    const own = await startWorker({ MODEL_DIR: modelDir });
    const res = await own.request("/v1/generate", {
      body: { version: 1, request_id: "finish-me", prompt_token_ids: PROMPT, sampling: { max_new_tokens: 60, temperature: 0, stop_token_ids: [] } },
    });
    const events = parseNdjsonStream(res.body!)[Symbol.asyncIterator]();
    await nextOfType(events, "token");
    const exit = own.stop("SIGTERM");
    await waitFor(async () => own.logs.some((l) => l.event === "shutdown_started"), Boolean);
    const late = await own
      .request("/v1/generate", { body: { version: 1, request_id: "too-late", prompt_token_ids: PROMPT } })
      .then((r) => r.status)
      .catch(() => "refused");
    expect([503, "refused"]).toContain(late);
    const done = await nextOfType(events, "done");
    expect(done).toMatchObject({ finish_reason: "length", usage: { completion_tokens: 60 } });
    expect(await exit).toBe(0);
    expect(own.logs.map((l) => l.event)).toEqual(expect.arrayContaining(["shutdown_started", "shutdown_complete"]));
  });
});

describe("start-up refusals", () => {
  it("the process exits with code 2 and a clear message when the folder is missing", async () => {
    const empty = mkdtempSync(join(tmpdir(), "le-worker-"));
    try {
      const noDir = await startWorkerExpectingFailure({ MODEL_DIR: join(empty, "absent") });
      expect(noDir.code).toBe(2);
      expect(noDir.stderr).toMatch(/MODEL_DIR .*absent is not a directory/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("names what is wrong: no config.json, a dtype without its ONNX file, CUDA files, device, secret", () => {
    const empty = mkdtempSync(join(tmpdir(), "le-worker-"));
    const folder = (over: Partial<Parameters<typeof inspectModelFolder>[0]>) =>
      inspectModelFolder({ modelDir: modelDir, modelName: undefined, dtype: undefined, maxContext: 0, ...over });
    try {
      expect(() => folder({ modelDir: empty })).toThrow(/no config\.json/);
      expect(() => folder({ dtype: "q4f16" })).toThrow(/DTYPE=q4f16 needs .*model_q4f16\.onnx.*this folder has: fp32/);
      expect(() => folder({ maxContext: 1_000_000 })).toThrow(/MAX_CONTEXT=1000000 exceeds/);
      expect(folder({}).dtype).toBe("fp32");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    // This machine has no CUDA provider libraries (installed with ONNXRUNTIME_NODE_INSTALL=skip).
    expect(() => checkDevice("cuda")).toThrow(/DEVICE=cuda needs onnxruntime-node's CUDA provider libraries/);
    const env = { MODEL_DIR: modelDir, WORKER_SECRET: "0123456789abcdef-secret" };
    expect(() => configFromEnv({ ...env, DEVICE: "tpu" })).toThrow(/DEVICE must be one of cpu, webgpu, cuda/);
    expect(() => configFromEnv({ ...env, WORKER_SECRET: undefined })).toThrow(/WORKER_SECRET is required/);
    expect(() => configFromEnv({ ...env, WORKER_SECRET: "short" })).toThrow(/at least 16 characters/);
    expect(() => configFromEnv({ ...env, QUEUE_CAPACITY: "-1" })).toThrow(/QUEUE_CAPACITY must be an integer >= 0/);
    expect(configFromEnv({ ...env, WORKER_SECRET: "0123456789abcdef-1, 0123456789abcdef-2" }).secrets).toHaveLength(2);
    // One generation at a time on GPUs; batched side by side on the CPU; MAX_RUNNING overrides.
    expect(configFromEnv({ ...env, DEVICE: "webgpu" }).maxRunning).toBe(1);
    expect(configFromEnv({ ...env, DEVICE: "cpu" }).maxRunning).toBe(4);
    expect(configFromEnv({ ...env, DEVICE: "cpu", MAX_RUNNING: "1" }).maxRunning).toBe(1);
    // onnxruntime's pool threads sleep between runs unless CPU_SPIN=on; CPU_THREADS reaches both engines.
    expect(configFromEnv(env).cpu).toEqual({ threads: 0, spin: false });
    expect(configFromEnv({ ...env, CPU_SPIN: "on", CPU_THREADS: "3" }).cpu).toEqual({ threads: 3, spin: true });
    expect(() => configFromEnv({ ...env, CPU_SPIN: "yes" })).toThrow(/CPU_SPIN must be on or off/);
    expect(cpuSessionOptions("cpu", { threads: 3, spin: false })).toEqual({ intraOpNumThreads: 3, extra: { session: { intra_op: { allow_spinning: "0" } } } });
    expect(cpuSessionOptions("webgpu", { threads: 3, spin: false })).toEqual({});
  });
});
