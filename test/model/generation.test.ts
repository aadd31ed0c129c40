import { describe, expect, it } from "vitest";
import { defineModelArgs, PRESETS } from "../../src/model/config.js";
import { generate } from "../../src/model/generation.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { Rng } from "../../src/model/rng.js";
import { argmax, logSoftmax, REFERENCE_SAMPLING, samplingDistribution } from "../../src/model/sampling.js";
import { randomWeights } from "../../src/model/weights.js";

const args = defineModelArgs({ dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: 64, multiple_of: 16, use_scaled_rope: true, max_seq_len: 64 });
const model = new ReferenceModel(args, randomWeights(args, 21));

/** Greedy decoding by full recompute (no cache): the independent oracle for the generation loop. */
function greedyByRecompute(prompt: number[], steps: number): number[] {
  const tokens = [...prompt];
  for (let i = 0; i < steps; i++) tokens.push(argmax(model.forward(tokens, 0, model.newCache(tokens.length))));
  return tokens.slice(prompt.length);
}

/** Log-probability of each token given its prefix, by full recompute. */
function logprobsByRecompute(sequence: number[]): number[] {
  const V = args.vocab_size;
  const logits = model.forward(sequence, 0, model.newCache(sequence.length), { allLogits: true });
  return sequence.map((t, i) => (i === 0 ? 0 : logSoftmax(logits.subarray((i - 1) * V, i * V))[t]!));
}

const promptA = [1, 2, 3, 4, 5];
const promptB = [9, 8, 7];

describe("generate (llama3 generation.py semantics)", () => {
  it("greedy decoding equals argmax over full recomputes, for every row of a batch", () => {
    const out = generate(model, [promptA, promptB], { maxGenLen: 10, temperature: 0, stopTokens: [] });
    expect(out[0]!.tokens).toEqual(greedyByRecompute(promptA, 10));
    expect(out[1]!.tokens).toEqual(greedyByRecompute(promptB, 10));
    expect(out.every((r) => !r.stopped)).toBe(true);
  });

  it("total_len = min(max_seq_len, max_gen_len + max_prompt_len) limits every row", () => {
    // max prompt 5, max_gen_len 10, max_seq_len 8 → total_len 8: row A gets 3 tokens, row B (3 long) 5.
    const out = generate(model, [promptA, promptB], { maxGenLen: 10, temperature: 0, maxSeqLen: 8, stopTokens: [] });
    expect(out.map((r) => r.tokens.length)).toEqual([3, 5]);
    expect(out[1]!.tokens).toEqual(greedyByRecompute(promptB, 5));
    // A row's output stops at len(prompt) + max_gen_len even when longer rows continue.
    const short = generate(model, [promptA, [1]], { maxGenLen: 2, temperature: 0, stopTokens: [] });
    expect(short.map((r) => r.tokens.length)).toEqual([2, 2]);
  });

  it("cuts before the first stop token and reports it", () => {
    const free = greedyByRecompute(promptA, 8);
    const stop = free[3]!;
    const firstIndex = free.indexOf(stop);
    const out = generate(model, [promptA], { maxGenLen: 8, temperature: 0, stopTokens: [stop] });
    expect(out[0]).toEqual({ tokens: free.slice(0, firstIndex), stopped: true });
  });

  it("stops decoding once every row has generated a stop token", () => {
    const free = greedyByRecompute(promptA, 4);
    let forwards = 0;
    const counting = Object.create(model) as ReferenceModel;
    counting.forward = (...a: Parameters<ReferenceModel["forward"]>) => {
      forwards++;
      return model.forward(...a);
    };
    generate(counting, [promptA], { maxGenLen: 20, temperature: 0, stopTokens: [free[0]!] });
    expect(forwards).toBe(1);
  });

  it("a stop token inside a prompt does not finish the row (only generated tokens count)", () => {
    // Row 2 finishes at its first step; row 1 is still teacher-forcing its prompt there, over a
    // stop token. Counting prompt tokens would end the batch and leave row 1 empty.
    const x = greedyByRecompute([5], 1)[0]!;
    const stops = [6, x];
    const out = generate(model, [[1, 6, 2], [5]], { maxGenLen: 4, temperature: 0, stopTokens: stops });
    expect(out[1]).toEqual({ tokens: [], stopped: true });
    const free = greedyByRecompute([1, 6, 2], 4);
    const cut = free.findIndex((t) => stops.includes(t));
    expect(out[0]!.tokens).toEqual(cut >= 0 ? free.slice(0, cut) : free);
    expect(out[0]!.tokens.length).toBeGreaterThan(0);
  });

  it("logprobs are the log-softmax of the raw logits for each emitted token", () => {
    const out = generate(model, [promptA, promptB], { maxGenLen: 6, temperature: 0, logprobs: true, stopTokens: [] });
    for (const [row, prompt] of [promptA, promptB].entries()) {
      const expected = logprobsByRecompute([...prompt, ...out[row]!.tokens]).slice(prompt.length);
      expect(out[row]!.logprobs!.length).toBe(6);
      out[row]!.logprobs!.forEach((lp, i) => expect(lp).toBeCloseTo(expected[i]!, 4));
    }
  });

  it("echo returns the prompt too, with logprob 0 for the first token", () => {
    const out = generate(model, [promptB], { maxGenLen: 4, temperature: 0, logprobs: true, echo: true, stopTokens: [] });
    const sequence = [...promptB, ...greedyByRecompute(promptB, 4)];
    expect(out[0]!.tokens).toEqual(sequence);
    const expected = logprobsByRecompute(sequence);
    expect(out[0]!.logprobs![0]).toBe(0);
    out[0]!.logprobs!.forEach((lp, i) => expect(lp).toBeCloseTo(expected[i]!, 4));
  });

  it("max_gen_len 0 yields nothing (or the scored prompt with echo)", () => {
    expect(generate(model, [promptA], { maxGenLen: 0, temperature: 0 })[0]!.tokens).toEqual([]);
    const echoed = generate(model, [promptA], { maxGenLen: 0, temperature: 0, echo: true, logprobs: true })[0]!;
    expect(echoed.tokens).toEqual(promptA);
    const expected = logprobsByRecompute(promptA);
    echoed.logprobs!.forEach((lp, i) => expect(lp).toBeCloseTo(expected[i]!, 4));
  });

  it("temperature sampling is seeded: same seed, same tokens; tokens come from the top-p set", () => {
    const run = (seed: number) => generate(model, [promptA, promptB], { maxGenLen: 12, temperature: 1, topP: 0.9, seed, stopTokens: [] });
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
    const out = run(3)[0]!.tokens;
    // Every sampled token lies in the reference top-p set of its step.
    const seq = [...promptA];
    for (const t of out) {
      const logits = model.forward(seq, 0, model.newCache(seq.length));
      const kept = samplingDistribution(logits, { ...REFERENCE_SAMPLING, temperature: 1, topP: 0.9 }).ids;
      expect([...kept]).toContain(t);
      seq.push(t);
    }
  });

  it("defaults to the Llama 3.1 stop tokens and the reference sampling (seed 1)", () => {
    const tiny = new ReferenceModel(PRESETS["tiny-tied"], randomWeights(PRESETS["tiny-tied"], 1));
    const out = generate(tiny, [[128000, 9906]], { maxGenLen: 3, maxSeqLen: 8 });
    expect(out[0]!.tokens.length).toBeLessThanOrEqual(3);
    expect(out[0]!.tokens.some((t) => [128001, 128008, 128009].includes(t))).toBe(false);
    expect(generate(tiny, [[128000, 9906]], { maxGenLen: 3, maxSeqLen: 8, seed: 1 })).toEqual(out);
    expect(new Rng(1).nextFloat()).toBeGreaterThanOrEqual(0); // seed 1 is a valid stream
  });

  it("rejects bad input naming the field", () => {
    expect(() => generate(model, [], { maxGenLen: 1 })).toThrow(/prompts/);
    expect(() => generate(model, [[]], { maxGenLen: 1 })).toThrow(/prompts\[0\]/);
    expect(() => generate(model, [[1, 2, 3]], { maxGenLen: 1, maxSeqLen: 2 })).toThrow(/prompts\[0\].*maxSeqLen/);
    expect(() => generate(model, [[1]], { maxGenLen: -1 })).toThrow(/maxGenLen/);
    expect(() => generate(model, [[1]], { maxGenLen: 1, temperature: -2 })).toThrow(/temperature/);
    expect(() => generate(model, [[1, 64]], { maxGenLen: 1 })).toThrow(/tokens\[1\]/);
  });
});
