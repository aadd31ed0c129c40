/**
 * The worker's tokens against the model core's reference forward pass (same random weights): greedy
 * decoding, logprobs, penalties, stop tokens, seeded sampling and the sampled distributions.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../src/model/generation.js";
import type { ReferenceModel } from "../../src/model/reference.js";
import { Tokenizer } from "../../src/llama/tokenizer.js";
import { startWorker, type WorkerProcess } from "./helpers/worker-process.js";
import { tinyWorkerModel } from "./helpers/tiny-model.js";

const PROMPT = [128000, 9906, 1917, 11, 420, 374, 264, 1296];
const STOP = [128001, 128008, 128009];
let worker: WorkerProcess;
let reference: ReferenceModel;
let modelDir: string;

beforeAll(async () => {
  const model = await tinyWorkerModel();
  reference = model.reference;
  modelDir = model.dir;
  worker = await startWorker({ MODEL_DIR: model.dir });
});
afterAll(async () => {
  await worker?.stop();
});

let requestCounter = 0;
const rid = () => `gen-${++requestCounter}`;

/** Logits after `prompt` from the reference forward pass. */
function referenceLogits(prompt: number[]): Float32Array {
  return reference.forward(prompt, 0, reference.newCache(prompt.length + 1));
}

describe("greedy decoding", () => {
  it("streams exactly the reference model's greedy tokens, with its logprobs", async () => {
    const [expected] = generate(reference, [PROMPT], { maxGenLen: 20, temperature: 0, stopTokens: STOP, logprobs: true });
    const r = await worker.generate({
      version: 1,
      request_id: rid(),
      prompt_token_ids: PROMPT,
      sampling: { max_new_tokens: 20, temperature: 0, logprobs: true, top_logprobs: 3 },
    });
    expect(r.tokens).toEqual(expected!.tokens);
    expect(r.done.finish_reason).toBe(expected!.stopped ? "stop" : "length");
    expect(r.start).toMatchObject({ prompt_tokens: PROMPT.length, cached_tokens: 0 });
    expect(r.done.usage).toEqual({ prompt_tokens: PROMPT.length, completion_tokens: 20, cached_tokens: 0 });
    const tokenEvents = r.events.filter((e) => e.type === "token");
    tokenEvents.forEach((e, i) => {
      expect(e.logprob).toBeCloseTo(expected!.logprobs![i]!, 3);
      // Greedy: the chosen token is the most likely one.
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.top_logprobs![0]!.id).toBe(e.id);
      expect(e.top_logprobs![0]!.logprob).toBeGreaterThanOrEqual(e.top_logprobs![1]!.logprob);
    });
    expect(r.done.timings.ttft_ms).toBeGreaterThan(0);
    expect(r.done.timings.decode_tokens_per_s).toBeGreaterThan(0);
  });

  it("stops at a requested stop token, reporting it instead of streaming it", async () => {
    const [expected] = generate(reference, [PROMPT], { maxGenLen: 8, temperature: 0, stopTokens: STOP });
    const stopAt = expected!.tokens.findIndex((t, i) => i >= 2 && expected!.tokens.indexOf(t) === i);
    const stopId = expected!.tokens[stopAt]!;
    const r = await worker.generate({
      version: 1,
      request_id: rid(),
      prompt_token_ids: PROMPT,
      sampling: { max_new_tokens: 8, temperature: 0, stop_token_ids: [stopId] },
    });
    expect(r.tokens).toEqual(expected!.tokens.slice(0, stopAt));
    expect(r.done).toMatchObject({ finish_reason: "stop", stop_token_id: stopId });
    expect(r.done.usage.completion_tokens).toBe(stopAt + 1);
  });

  it("applies repetition (prompt + output) and presence (output) penalties as specified", async () => {
    // Independent loop: reference logits, HF/CTRL repetition penalty over all previous tokens, then the
    // OpenAI presence penalty over generated tokens, then argmax.
    // This prompt makes plain greedy decoding repeat its first token, so the penalties must matter.
    const prompt = [128000, 9906, 1917];
    const repetition = 1.8;
    const presence = 1.5;
    const history = [...prompt];
    const generated: number[] = [];
    const cache = reference.newCache(64);
    let logits = reference.forward(prompt, 0, cache);
    for (let step = 0; step < 12; step++) {
      const l = Float32Array.from(logits);
      for (const id of new Set(history)) l[id] = l[id]! < 0 ? l[id]! * repetition : l[id]! / repetition;
      for (const id of new Set(generated)) l[id] = l[id]! - presence;
      let best = 0;
      for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
      generated.push(best);
      history.push(best);
      logits = reference.forward([best], history.length - 1, cache);
    }
    const r = await worker.generate({
      version: 1,
      request_id: rid(),
      prompt_token_ids: prompt,
      sampling: { max_new_tokens: 12, temperature: 0, repetition_penalty: repetition, presence_penalty: presence, stop_token_ids: [] },
    });
    expect(r.tokens).toEqual(generated);
    const [plain] = generate(reference, [prompt], { maxGenLen: 12, temperature: 0, stopTokens: [] });
    expect(r.tokens).not.toEqual(plain!.tokens); // the penalties made a difference
  });

  it("tokenizes text prompts with the text core (BOS added) for direct use", async () => {
    const tokenizer = await Tokenizer.fromFile(`${modelDir}/tokenizer.json`);
    const text = "Hello world, this is a test";
    const res = await worker.request("/v1/tokenize", { body: { text, bos: true } });
    const tokenized = (await res.json()) as { ids: number[]; count: number };
    expect(tokenized.ids).toEqual(tokenizer.encode(text, { bos: true, eos: false }));
    expect(tokenized.count).toBe(tokenized.ids.length);
    const byText = await worker.generate({ version: 1, request_id: rid(), prompt: text, sampling: { max_new_tokens: 6, temperature: 0 } });
    const byIds = await worker.generate({
      version: 1,
      request_id: rid(),
      prompt_token_ids: tokenized.ids,
      sampling: { max_new_tokens: 6, temperature: 0 },
    });
    expect(byText.start.prompt_tokens).toBe(tokenized.count);
    expect(byText.tokens).toEqual(byIds.tokens);
  });
});

describe("seeded sampling", () => {
  it("gives the same tokens for the same seed and different tokens for another seed", async () => {
    const body = (seed: number) => ({
      version: 1 as const,
      request_id: rid(),
      prompt_token_ids: PROMPT,
      sampling: { max_new_tokens: 12, temperature: 1, top_k: 40, seed, stop_token_ids: [] },
    });
    const a = await worker.generate(body(7));
    const b = await worker.generate(body(7));
    const c = await worker.generate(body(8));
    expect(a.start.seed).toBe(7);
    expect(a.tokens).toHaveLength(12);
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it("reports the seed it drew when none is given, and that seed reproduces the run", async () => {
    const sampling = { max_new_tokens: 8, temperature: 1, top_k: 40, stop_token_ids: [] };
    const first = await worker.generate({ version: 1, request_id: rid(), prompt_token_ids: PROMPT, sampling });
    const again = await worker.generate({
      version: 1,
      request_id: rid(),
      prompt_token_ids: PROMPT,
      sampling: { ...sampling, seed: first.start.seed },
    });
    expect(again.tokens).toEqual(first.tokens);
  });
});

/**
 * Meta's `sample_top_p` after a top-k cut, written out from the definitions: p_i = softmax(logits / T);
 * keep the k most likely; renormalise; keep a token when the mass before it (descending) is <= top_p.
 */
function expectedDistribution(logits: Float32Array, temperature: number, topK: number, topP: number): Map<number, number> {
  const max = logits.reduce((m, l) => Math.max(m, l), -Infinity);
  const weights = Array.from(logits, (l, id) => ({ id, w: Math.exp((l - max) / temperature) }));
  weights.sort((a, b) => b.w - a.w || a.id - b.id);
  const kept = topK > 0 ? weights.slice(0, topK) : weights;
  const total = kept.reduce((s, x) => s + x.w, 0);
  const out: { id: number; p: number }[] = [];
  let before = 0;
  for (const { id, w } of kept) {
    if (out.length > 0 && before > topP) break;
    out.push({ id, p: w / total });
    before += w / total;
  }
  const mass = out.reduce((s, x) => s + x.p, 0);
  return new Map(out.map(({ id, p }) => [id, p / mass]));
}

/** Pearson's chi-square statistic of observed counts against expected probabilities. */
function chiSquare(counts: Map<number, number>, expected: Map<number, number>, n: number): number {
  let stat = 0;
  for (const [id, p] of expected) stat += ((counts.get(id) ?? 0) - n * p) ** 2 / (n * p);
  return stat;
}

// Chi-square critical values at significance 0.001, by degrees of freedom (standard tables).
const CHI2_CRITICAL_0_001 = [NaN, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46];

async function draws(n: number, sampling: Record<string, unknown>): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (let start = 0; start < n; start += 8) {
    const batch = Array.from({ length: Math.min(8, n - start) }, (_, i) =>
      worker.generate({
        version: 1,
        request_id: rid(),
        prompt_token_ids: PROMPT,
        sampling: { max_new_tokens: 1, stop_token_ids: [], seed: 1000 + start + i, ...sampling },
      }),
    );
    for (const r of await Promise.all(batch)) counts.set(r.tokens[0]!, (counts.get(r.tokens[0]!) ?? 0) + 1);
  }
  return counts;
}

describe("sampled distributions (fixed seeds, chi-square at 0.001)", () => {
  const N = 240;
  let logits: Float32Array;
  beforeAll(() => {
    logits = referenceLogits(PROMPT);
  });

  it("top-k keeps exactly the k most likely tokens, and temperature reshapes their distribution", async () => {
    const hot = expectedDistribution(logits, 1, 4, 1);
    const cold = expectedDistribution(logits, 0.2, 4, 1);
    const hotCounts = await draws(N, { temperature: 1, top_k: 4 });
    const coldCounts = await draws(N, { temperature: 0.2, top_k: 4 });
    for (const counts of [hotCounts, coldCounts]) {
      expect([...counts.keys()].every((id) => hot.has(id))).toBe(true);
    }
    const df = hot.size - 1;
    expect(chiSquare(hotCounts, hot, N)).toBeLessThan(CHI2_CRITICAL_0_001[df]!);
    expect(chiSquare(coldCounts, cold, N)).toBeLessThan(CHI2_CRITICAL_0_001[df]!);
    // The cold draws are not from the T=1 distribution (the test has power to see temperature).
    expect(chiSquare(coldCounts, hot, N)).toBeGreaterThan(CHI2_CRITICAL_0_001[df]!);
  }, 120_000);

  it("top-p keeps the smallest prefix whose preceding mass is <= p (transformers.js would ignore it)", async () => {
    // Choose p between the masses of the 2 and 3 most likely tokens: exactly 3 tokens survive.
    const full = [...expectedDistribution(logits, 1, 0, 1).entries()].sort((a, b) => b[1] - a[1]);
    const massOf = (k: number) => full.slice(0, k).reduce((s, [, p]) => s + p, 0);
    const topP = (massOf(2) + massOf(3)) / 2;
    const expected = expectedDistribution(logits, 1, 0, topP);
    expect(expected.size).toBe(3);
    const counts = await draws(N, { temperature: 1, top_p: topP });
    expect([...counts.keys()].every((id) => expected.has(id))).toBe(true);
    expect(chiSquare(counts, expected, N)).toBeLessThan(CHI2_CRITICAL_0_001[2]!);
  }, 120_000);
});
