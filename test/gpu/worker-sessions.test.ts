/**
 * Session KV reuse: a follow-up turn computes only its new suffix yet yields the same tokens as a fresh run;
 * a diverging prompt falls back to the common prefix; the cache LRU stays within its byte budget and disposes
 * what it evicts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../src/model/generation.js";
import type { ReferenceModel } from "../../src/model/reference.js";
import { parseNdjsonStream } from "../../src/protocol/index.js";
import { startWorker, type WorkerProcess } from "./helpers/worker-process.js";
import { tinyWorkerModel } from "./helpers/tiny-model.js";

// Tiny preset: 2 layers × (key + value) × 2 kv heads × head_dim 16 × 4 bytes = 512 bytes per cached token.
const KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 16 * 4;
const KV_BUDGET = 40 * KV_BYTES_PER_TOKEN;

let worker: WorkerProcess;
let reference: ReferenceModel;

beforeAll(async () => {
  const model = await tinyWorkerModel();
  reference = model.reference;
  worker = await startWorker({ MODEL_DIR: model.dir, KV_BUDGET_BYTES: String(KV_BUDGET) });
});
afterAll(async () => {
  await worker?.stop();
});

let n = 0;
const rid = () => `sess-${++n}`;
const greedy = (max: number) => ({ max_new_tokens: max, temperature: 0, stop_token_ids: [] });
const prefillFed = async () => (await worker.metrics()).get('le_worker_model_tokens_total{phase="prefill"}') ?? 0;

describe("prefix reuse", () => {
  it("a follow-up turn feeds only the new suffix and matches a fresh computation token for token", async () => {
    const turn1Prompt = [128000, 9906, 1917, 11, 420, 374];
    const turn1 = await worker.generate({ version: 1, request_id: rid(), session_id: "chat-a", prompt_token_ids: turn1Prompt, sampling: greedy(6) });
    expect(turn1.start.cached_tokens).toBe(0);

    // The edge sends the whole conversation again: history, the answer, and the next user turn.
    const turn2Prompt = [...turn1Prompt, ...turn1.tokens, 128009, 128006, 882, 128007, 271, 13347];
    const before = await prefillFed();
    const turn2 = await worker.generate({ version: 1, request_id: rid(), session_id: "chat-a", prompt_token_ids: turn2Prompt, sampling: greedy(8) });
    const fedWithCache = (await prefillFed()) - before;
    // Cached: the prompt and every answer token but the last one (it was sampled, never fed back).
    const expectedCached = turn1Prompt.length + turn1.tokens.length - 1;
    expect(turn2.start.cached_tokens).toBe(expectedCached);
    expect(turn2.done.usage.cached_tokens).toBe(expectedCached);
    expect(fedWithCache).toBe(turn2Prompt.length - expectedCached);

    const fresh = await worker.generate({ version: 1, request_id: rid(), session_id: null, prompt_token_ids: turn2Prompt, sampling: greedy(8) });
    const fedFresh = (await prefillFed()) - before - fedWithCache;
    expect(fresh.start.cached_tokens).toBe(0);
    expect(fedFresh).toBe(turn2Prompt.length);
    expect(turn2.tokens).toEqual(fresh.tokens);
    const [expected] = generate(reference, [turn2Prompt], { maxGenLen: 8, temperature: 0, stopTokens: [] });
    expect(turn2.tokens).toEqual(expected!.tokens);

    const metrics = await worker.metrics();
    expect(metrics.get('le_worker_kv_cache_lookups_total{result="hit"}')).toBeGreaterThanOrEqual(1);
  });

  it("a prompt that diverges from the cache reuses the longest common prefix", async () => {
    const base = [128000, 791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679];
    await worker.generate({ version: 1, request_id: rid(), session_id: "chat-b", prompt_token_ids: base, sampling: greedy(4) });
    // Edit the conversation at position 6 (e.g. the user rewrote a message).
    const edited = [...base.slice(0, 6), 1202, 3805, 13];
    const before = await prefillFed();
    const r = await worker.generate({ version: 1, request_id: rid(), session_id: "chat-b", prompt_token_ids: edited, sampling: greedy(6) });
    expect(r.start.cached_tokens).toBe(6);
    expect((await prefillFed()) - before).toBe(edited.length - 6);
    const [expected] = generate(reference, [edited], { maxGenLen: 6, temperature: 0, stopTokens: [] });
    expect(r.tokens).toEqual(expected!.tokens);
    const metrics = await worker.metrics();
    expect(metrics.get('le_worker_kv_cache_lookups_total{result="partial"}')).toBeGreaterThanOrEqual(1);
  });

  it("repeating the same prompt recomputes only its last token", async () => {
    const prompt = [128000, 40, 1093, 279, 1888, 315];
    const a = await worker.generate({ version: 1, request_id: rid(), session_id: "chat-c", prompt_token_ids: prompt, sampling: greedy(5) });
    const b = await worker.generate({ version: 1, request_id: rid(), session_id: "chat-c", prompt_token_ids: prompt, sampling: greedy(5) });
    expect(b.start.cached_tokens).toBe(prompt.length - 1);
    expect(b.tokens).toEqual(a.tokens);
  });
});

describe("cache memory", () => {
  it("stays within the byte budget over many sessions, disposing every evicted cache", async () => {
    const live: number[] = [];
    for (let i = 0; i < 60; i++) {
      const prompt = [128000, 1000 + i, 2000 + i, 3000 + i, 4000 + i, 5000 + i];
      await worker.generate({ version: 1, request_id: rid(), session_id: `many-${i}`, prompt_token_ids: prompt, sampling: greedy(4) });
      const ready = await worker.readyz();
      expect(ready.kv_bytes).toBeLessThanOrEqual(KV_BUDGET);
      const metrics = await worker.metrics();
      // Caches alive = those held by the LRU (nothing runs between requests): none leaked.
      expect(metrics.get("le_worker_kv_live_caches")).toBe(ready.kv_sessions);
      live.push(ready.kv_sessions);
    }
    // Each session holds 6 + 4 - 1 = 9 positions (4608 bytes): at most 4 fit in 40 positions' worth.
    expect(Math.max(...live)).toBe(Math.floor(KV_BUDGET / (9 * KV_BYTES_PER_TOKEN)));
    const evictions = (await worker.metrics()).get("le_worker_kv_cache_evictions_total") ?? 0;
    expect(evictions).toBeGreaterThanOrEqual(60 - 4);
    // The oldest session was evicted: its next turn starts from scratch.
    const again = await worker.generate({
      version: 1,
      request_id: rid(),
      session_id: "many-0",
      prompt_token_ids: [128000, 1000, 2000, 3000, 4000, 5000, 42],
      sampling: greedy(1),
    });
    expect(again.start.cached_tokens).toBe(0);
  }, 60_000);
});

describe.each(["gpu", "standard"] as const)("MAX_RUNNING > 1 (%s graph): batched decoding", (flavour) => {
  it("runs generations side by side in shared forward passes with the same tokens as alone", async () => {
    const model = await tinyWorkerModel("tiny", 1, flavour);
    const own = await startWorker({ MODEL_DIR: model.dir, MAX_RUNNING: "3" });
    try {
      const layout = own.logs.find((l) => l.event === "batch_decode");
      expect(layout).toMatchObject({ layout: flavour === "gpu" ? "seqlens" : "append", max_rows: 3 });
      // Different prompt lengths: the rows are right-padded, never left-padded.
      const prompts = [
        [128000, 9906, 1917, 11, 420],
        [128000, 791, 4062, 14198, 39935, 35308, 927],
        [128000, 40, 1093, 279],
      ];
      const seeded = { max_new_tokens: 16, temperature: 1, top_k: 40, seed: 5, stop_token_ids: [] };
      const bodies = [
        { prompt_token_ids: prompts[0], sampling: greedy(16) },
        { prompt_token_ids: prompts[1], sampling: greedy(16) },
        { prompt_token_ids: prompts[2], sampling: seeded },
      ];
      const arrivals: string[] = [];
      const together = await Promise.all(
        bodies.map(async (body, i) => {
          const res = await own.request("/v1/generate", { body: { version: 1, request_id: `side-${flavour}-${i}`, ...body } });
          const out: number[] = [];
          for await (const e of parseNdjsonStream(res.body!)) {
            arrivals.push(`${i}:${e.type}`);
            if (e.type === "token") out.push(e.id);
          }
          return out;
        }),
      );
      // All three started before any finished: they ran side by side.
      const firstDone = arrivals.findIndex((a) => a.endsWith(":done"));
      expect(arrivals.slice(0, firstDone)).toEqual(expect.arrayContaining(["0:start", "1:start", "2:start"]));
      const rows = (await own.metrics()).get("le_worker_decode_batch_rows_sum")!;
      const steps = (await own.metrics()).get("le_worker_decode_batch_rows_count")!;
      expect(rows / steps).toBeGreaterThan(1.5);

      for (const i of [0, 1]) {
        const [expected] = generate(reference, [prompts[i]!], { maxGenLen: 16, temperature: 0, stopTokens: [] });
        expect(together[i]).toEqual(expected!.tokens);
      }
      // The seeded request alone (no other generation running, so one-row steps) gives the same tokens.
      const alone = await own.generate({ version: 1, request_id: `alone-${flavour}`, prompt_token_ids: prompts[2], sampling: seeded });
      expect(together[2]).toEqual(alone.tokens);
    } finally {
      await own.stop();
    }
  });
});
