/**
 * The worker's static-KV fast path (FAST_DECODER=auto with a folder built with staticKv: true): greedy
 * requests run on the fast decoder with the reference model's greedy tokens, stop tokens, prefix reuse with
 * truthful cached_tokens, cancellation between readbacks; sampled, penalised and logprobs requests run there
 * too, choosing tokens on the host exactly as a worker without the fast decoder does. Real worker processes
 * on CPU.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configFromEnv } from "../../src/gpu/config.js";
import { generate } from "../../src/model/generation.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { parseNdjsonStream, type WorkerEvent } from "../../src/protocol/index.js";
import { tinyModelDir, tinyWeights } from "../helpers/models.js";
import { startWorker, type WorkerProcess } from "./helpers/worker-process.js";

const PROMPT = [128000, 9906, 1917, 11, 420, 374, 264, 1296];
const READBACK = 4;
let worker: WorkerProcess;
let reference: ReferenceModel;

beforeAll(async () => {
  const dir = await tinyModelDir({ staticKv: true });
  const weights = tinyWeights();
  reference = new ReferenceModel(weights.args, weights);
  worker = await startWorker({ MODEL_DIR: dir, MAX_RUNNING: "1", FAST_DECODER_READBACK: String(READBACK) });
});
afterAll(async () => {
  await worker?.stop();
});

let n = 0;
const rid = () => `fast-${++n}`;
const greedy = (maxNewTokens: number, extra: Record<string, unknown> = {}) => ({ max_new_tokens: maxNewTokens, temperature: 0, stop_token_ids: [], ...extra });
const referenceGreedy = (prompt: number[], count: number) => generate(reference, [prompt], { maxGenLen: count, temperature: 0, stopTokens: [] })[0]!.tokens;

async function engineCounts(): Promise<{ fast: number; transformers: number }> {
  const m = await worker.metrics();
  return {
    fast: m.get('le_worker_generations_total{engine="static_kv"}') ?? 0,
    transformers: m.get('le_worker_generations_total{engine="transformers"}') ?? 0,
  };
}

const doneLog = (requestId: string) => worker.logs.find((l) => l.event === "request_done" && l.request_id === requestId);

describe("FAST_DECODER=auto with a static-KV graph", () => {
  it("reports the fast decoder in /readyz with its capacity (the model's context, under the bound)", async () => {
    const ready = await worker.readyz();
    expect(ready.fast_decoder).toEqual({ capacity: 4096, readback_every: READBACK, busy: false, cached_tokens: 0 });
  });

  it("serves greedy requests with exactly the reference model's greedy tokens, usage and timings", async () => {
    const before = await engineCounts();
    const expected = referenceGreedy(PROMPT, 19);
    const r = await worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling: greedy(19) });
    expect(r.tokens).toEqual(expected);
    expect(r.events.filter((e) => e.type === "token")).toEqual(expected.map((id) => ({ type: "token", id })));
    expect(r.done).toMatchObject({ finish_reason: "length", usage: { prompt_tokens: PROMPT.length, completion_tokens: 19 } });
    expect(r.done.timings.ttft_ms).toBeGreaterThan(0);
    expect(r.done.timings.decode_tokens_per_s).toBeGreaterThan(0);
    const after = await engineCounts();
    expect(after.fast - before.fast).toBe(1);
    expect(after.transformers - before.transformers).toBe(0);
    expect(doneLog(r.start.request_id)).toMatchObject({ engine: "static_kv", finish_reason: "length" });
  });

  it("ends with finish_reason stop at a stop token inside a readback, and reuses only accepted tokens next turn", async () => {
    const expected = referenceGreedy(PROMPT, 20);
    // A token whose first occurrence is not at a readback boundary, so steps after it were computed too.
    const stopAt = expected.findIndex((t, i) => i >= 2 && i % READBACK !== 0 && expected.indexOf(t) === i);
    expect(stopAt).toBeGreaterThan(0);
    const stopId = expected[stopAt]!;
    const first = await worker.generate({
      version: 1,
      request_id: rid(),
      session_id: "fast-stop",
      prompt_token_ids: PROMPT,
      sampling: greedy(20, { stop_token_ids: [stopId] }),
    });
    expect(first.tokens).toEqual(expected.slice(0, stopAt));
    expect(first.done).toMatchObject({ finish_reason: "stop", stop_token_id: stopId, usage: { completion_tokens: stopAt + 1 } });
    expect(doneLog(first.start.request_id)).toMatchObject({ engine: "static_kv" });

    // The next prompt continues with the whole greedy continuation: the cache physically holds tokens past
    // the stop token, but only the accepted ones (answer + stop token) may count as cached.
    const next = [...PROMPT, ...expected];
    const second = await worker.generate({ version: 1, request_id: rid(), session_id: "fast-stop", prompt_token_ids: next, sampling: greedy(6) });
    expect(second.start.cached_tokens).toBe(PROMPT.length + stopAt + 1);
    expect(second.done.usage.cached_tokens).toBe(PROMPT.length + stopAt + 1);
    expect(second.tokens).toEqual(referenceGreedy(next, 6));
  });

  it("a follow-up turn prefills only the new suffix and gives the reference's tokens", async () => {
    const turn1Prompt = [128000, 9906, 1917, 11, 420, 374];
    const turn1 = await worker.generate({ version: 1, request_id: rid(), session_id: "fast-chat", prompt_token_ids: turn1Prompt, sampling: greedy(7) });
    const turn2Prompt = [...turn1Prompt, ...turn1.tokens, 128009, 128006, 882, 128007, 271, 13347];
    const fedBefore = (await worker.metrics()).get('le_worker_model_tokens_total{phase="prefill"}')!;
    const turn2 = await worker.generate({ version: 1, request_id: rid(), session_id: "fast-chat", prompt_token_ids: turn2Prompt, sampling: greedy(8) });
    const fed = (await worker.metrics()).get('le_worker_model_tokens_total{phase="prefill"}')! - fedBefore;
    // Cached: the prompt and every answer token but the last one (it was read back, never fed).
    const expectedCached = turn1Prompt.length + turn1.tokens.length - 1;
    expect(turn2.start.cached_tokens).toBe(expectedCached);
    expect(fed).toBe(turn2Prompt.length - expectedCached);
    expect(turn1.tokens).toEqual(referenceGreedy(turn1Prompt, 7));
    expect(turn2.tokens).toEqual(referenceGreedy(turn2Prompt, 8));
    expect(doneLog(turn2.start.request_id)).toMatchObject({ engine: "static_kv" });
    const metrics = await worker.metrics();
    expect(metrics.get('le_worker_kv_cache_lookups_total{result="hit"}')).toBeGreaterThanOrEqual(1);
  });

  it("cancel stops a fast generation within a readback and the decoder serves the next request", async () => {
    const id = rid();
    const res = await worker.request("/v1/generate", { body: { version: 1, request_id: id, prompt_token_ids: [128000, 9906], sampling: greedy(4000) } });
    const events = parseNdjsonStream(res.body!)[Symbol.asyncIterator]();
    const seen: WorkerEvent[] = [];
    for (;;) {
      const { value } = await events.next();
      seen.push(value as WorkerEvent);
      if (value?.type === "token") break;
    }
    expect(await worker.readyz()).toMatchObject({ running: 1, fast_decoder: { busy: true } });
    expect((await worker.request(`/v1/requests/${id}/cancel`, { method: "POST", body: "" })).status).toBe(200);
    let done: WorkerEvent | undefined;
    for (let e = await events.next(); !e.done; e = await events.next()) if (e.value.type === "done") done = e.value;
    expect(done).toMatchObject({ finish_reason: "cancelled" });
    expect(done?.type === "done" && done.usage.completion_tokens).toBeLessThan(4000);
    expect(await worker.readyz()).toMatchObject({ running: 0, fast_decoder: { busy: false } });
    const after = await worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling: greedy(5) });
    expect(after.tokens).toEqual(referenceGreedy(PROMPT, 5));
  });

  it("runs sampled, penalised and logprobs requests with the tokens and logprobs of a worker without it", async () => {
    const plain = await startWorker({ MODEL_DIR: await tinyModelDir({ staticKv: true }), MAX_RUNNING: "1", FAST_DECODER: "off" });
    try {
      const cases = [
        { max_new_tokens: 24, temperature: 0.8, top_p: 0.9, seed: 7, stop_token_ids: [] },
        { max_new_tokens: 24, temperature: 1.2, top_k: 40, seed: 11, stop_token_ids: [] },
        greedy(12, { logprobs: true, top_logprobs: 3 }),
        { max_new_tokens: 16, temperature: 0.7, seed: 5, presence_penalty: 0.5, frequency_penalty: 0.3, repetition_penalty: 1.2, stop_token_ids: [] },
      ];
      const before = await engineCounts();
      for (const sampling of cases) {
        const fast = await worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling });
        const other = await plain.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling });
        expect(doneLog(fast.start.request_id)).toMatchObject({ engine: "static_kv" });
        expect(plain.logs.find((l) => l.event === "request_done" && l.request_id === other.start.request_id)).toMatchObject({ engine: "transformers" });
        expect(fast.tokens).toEqual(other.tokens);
        // (cached_tokens differ: the fast decoder reuses its last sequence whatever the session id.)
        expect({ ...fast.done.usage, cached_tokens: 0 }).toEqual({ ...other.done.usage, cached_tokens: 0 });
        const logprobsOf = (r: typeof fast) => r.events.flatMap((e) => (e.type === "token" && e.logprob !== undefined ? [e] : []));
        const [a, b] = [logprobsOf(fast), logprobsOf(other)];
        expect(a.length).toBe("logprobs" in sampling ? fast.tokens.length : 0);
        a.forEach((e, i) => {
          expect(e.logprob).toBeCloseTo(b[i]!.logprob!, 4);
          expect(e.top_logprobs!.map((t) => t.id)).toEqual(b[i]!.top_logprobs!.map((t) => t.id));
        });
      }
      const after = await engineCounts();
      expect(after.fast - before.fast).toBe(cases.length);
      expect(after.transformers - before.transformers).toBe(0);
      // Seeded sampling differs between seeds (the test above would pass trivially if sampling were ignored).
      const seeds = await Promise.all(
        [1, 2].map((seed) => worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling: { max_new_tokens: 24, temperature: 1, seed, stop_token_ids: [] } })),
      );
      expect(seeds[0]!.tokens).not.toEqual(seeds[1]!.tokens);
    } finally {
      await plain.stop();
    }
  });
});

describe("PREFIX_REUSE=off", () => {
  let plain: WorkerProcess;
  beforeAll(async () => {
    plain = await startWorker({ MODEL_DIR: await tinyModelDir({ staticKv: true }), MAX_RUNNING: "1", PREFIX_REUSE: "off" });
  });
  afterAll(async () => {
    await plain?.stop();
  });

  it("computes every prompt whole on both engines and keeps no session cache", async () => {
    const prefillFed = async () => (await plain.metrics()).get('le_worker_model_tokens_total{phase="prefill"}') ?? 0;
    const turn1 = await plain.generate({ version: 1, request_id: rid(), session_id: "no-reuse", prompt_token_ids: PROMPT, sampling: greedy(6) });
    const turn2Prompt = [...PROMPT, ...turn1.tokens, 128009, 128006, 882, 128007, 271, 13347];
    for (const sampling of [greedy(5), { max_new_tokens: 5, temperature: 0.8, seed: 3 }]) {
      const before = await prefillFed();
      const turn2 = await plain.generate({ version: 1, request_id: rid(), session_id: "no-reuse", prompt_token_ids: turn2Prompt, sampling });
      expect(turn2.start.cached_tokens).toBe(0);
      expect(turn2.done.usage.cached_tokens).toBe(0);
      expect((await prefillFed()) - before).toBe(turn2Prompt.length);
    }
    expect(turn1.tokens).toEqual(referenceGreedy(PROMPT, 6));
    expect(await plain.readyz()).toMatchObject({ kv_sessions: 0, kv_bytes: 0, fast_decoder: { busy: false } });
    const engines = plain.logs.filter((l) => l.event === "request_done").map((l) => l.engine);
    expect(engines).toEqual(["static_kv", "static_kv", "static_kv"]);
  });
});

describe("FAST_DECODER settings", () => {
  it("validates FAST_DECODER and its bounds, naming the variable", () => {
    const env = { MODEL_DIR: "/x", WORKER_SECRET: "0123456789abcdef-secret" };
    expect(configFromEnv(env)).toMatchObject({ fastDecoder: "auto", fastDecoderMaxContext: 8192, fastDecoderReadback: 16, prefixReuse: true });
    expect(configFromEnv({ ...env, PREFIX_REUSE: "off" })).toMatchObject({ prefixReuse: false });
    expect(() => configFromEnv({ ...env, PREFIX_REUSE: "no" })).toThrow(/PREFIX_REUSE must be on or off/);
    expect(() => configFromEnv({ ...env, FAST_DECODER: "on" })).toThrow(/FAST_DECODER must be auto or off/);
    expect(() => configFromEnv({ ...env, FAST_DECODER_MAX_CONTEXT: "8" })).toThrow(/FAST_DECODER_MAX_CONTEXT must be an integer >= 16/);
    expect(() => configFromEnv({ ...env, FAST_DECODER_READBACK: "0" })).toThrow(/FAST_DECODER_READBACK must be an integer >= 1/);
  });
});
