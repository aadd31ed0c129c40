import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defineModelArgs, headDim, LLAMA31_ROPE_SCALING, PRESETS, type ModelArgs } from "../../src/model/config.js";
import {
  applyRotaryHalf,
  applyRotaryInterleaved,
  KVCache,
  metaRopeFrequencies,
  ReferenceModel,
  rmsNorm,
  ropeCosSin,
  ropeInvFrequencies,
} from "../../src/model/reference.js";
import { Rng } from "../../src/model/rng.js";
import type { Tensor } from "../../src/model/tensor.js";
import { inMemoryWeights, layerWeightNames, loadAll, LM_HEAD, EMBED_TOKENS, permuteHfToMeta, permuteMetaToHf, randomWeights } from "../../src/model/weights.js";

// Small vocabularies keep these tests fast; the architecture does not depend on the vocabulary size.
const small = (p: Partial<ModelArgs> = {}): ModelArgs =>
  defineModelArgs({ dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: 300, multiple_of: 16, use_scaled_rope: true, max_seq_len: 64, ...p });

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomVector(n: number, seed: number): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n));
}

describe("RMSNorm", () => {
  it("matches a hand computation", () => {
    // mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5
    const x = Float32Array.of(1, 2, 3, 4);
    const w = Float32Array.of(1, 0.5, 2, 1);
    const eps = 1e-5;
    const inv = 1 / Math.sqrt(7.5 + eps);
    const expected = [1 * inv * 1, 2 * inv * 0.5, 3 * inv * 2, 4 * inv * 1];
    const got = rmsNorm(x, w, eps);
    expected.forEach((e, i) => expect(got[i]).toBeCloseTo(e, 6));
    expect(got[0]).toBeCloseTo(0.365148, 6); // 1/sqrt(7.5)
  });

  it("normalises each row separately", () => {
    const x = Float32Array.of(3, 4, 0, 0, 0, 5);
    const got = rmsNorm(x, Float32Array.of(1, 1, 1), 0);
    // Row 1: mean(x²) = 25/3; row 2: 25/3 as well.
    const inv = 1 / Math.sqrt(25 / 3);
    [3, 4, 0, 0, 0, 5].forEach((v, i) => expect(got[i]).toBeCloseTo(v * inv, 6));
  });

  it("eps matters for tiny inputs", () => {
    const x = Float32Array.of(1e-4, -1e-4);
    const withEps = rmsNorm(x, Float32Array.of(1, 1), 1e-5);
    expect(withEps[0]).toBeCloseTo(1e-4 / Math.sqrt(1e-8 + 1e-5), 6);
  });
});

describe("RoPE frequencies and Llama 3.1 scaling", () => {
  const a = PRESETS["llama-3.1-8b"]; // head_dim 128, theta 5e5, scaling (8, 1, 4, 8192)

  it("29 unchanged, 6 blended, 29 divided by 8 for head_dim 128 and theta 5e5", () => {
    const unscaled = ropeInvFrequencies({ ...a, use_scaled_rope: false, rope_scaling: null });
    const scaled = ropeInvFrequencies(a);
    let unchanged = 0;
    let divided = 0;
    let blended = 0;
    for (let i = 0; i < 64; i++) {
      if (scaled[i] === unscaled[i]) unchanged++;
      else if (scaled[i] === Math.fround(unscaled[i]! / 8)) divided++;
      else blended++;
    }
    expect([unchanged, blended, divided]).toEqual([29, 6, 29]);
  });

  it("spot values follow the reference formula (computed here in float64)", () => {
    const scaled = ropeInvFrequencies(a);
    const f = (i: number) => 1 / 500000 ** ((2 * i) / 128);
    expect(scaled[0]).toBe(1);
    expect(scaled[28]).toBe(Math.fround(f(28))); // wavelength 2π/f(28) ≈ 1.98e3 < 2048: unchanged
    expect(scaled[63]! / (f(63) / 8)).toBeCloseTo(1, 6); // longest wavelength: divided by 8
    for (const i of [29, 31, 34]) {
      const wavelen = (2 * Math.PI) / f(i);
      expect(wavelen).toBeGreaterThanOrEqual(2048);
      expect(wavelen).toBeLessThanOrEqual(8192);
      const smooth = (8192 / wavelen - 1) / (4 - 1);
      const expected = ((1 - smooth) * f(i)) / 8 + smooth * f(i);
      expect(scaled[i]! / expected).toBeCloseTo(1, 6);
    }
    // i = 35 is the first divided frequency: wavelength above 8192.
    expect((2 * Math.PI) / f(35)).toBeGreaterThan(8192);
  });

  it("Meta's apply_scaling and HF's llama3 rule give identical float32 frequencies", () => {
    for (const preset of Object.values(PRESETS)) expect(ropeInvFrequencies(preset)).toEqual(metaRopeFrequencies(preset));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }).map((h) => h * 2),
        fc.double({ min: 1000, max: 1e7, noNaN: true }),
        fc.double({ min: 1, max: 64, noNaN: true }),
        fc.double({ min: 0.5, max: 2, noNaN: true }),
        fc.double({ min: 2.5, max: 8, noNaN: true }),
        fc.integer({ min: 512, max: 65536 }),
        (hd, theta, factor, low, high, orig) => {
          const args = defineModelArgs({ dim: hd, n_layers: 1, n_heads: 1, vocab_size: 2, rope_theta: theta,
            rope_scaling: { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: orig } });
          expect(ropeInvFrequencies(args)).toEqual(metaRopeFrequencies(args));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("cos/sin tables use the float32 angle position · inv_freq", () => {
    const { cos, sin } = ropeCosSin(a, 3, 100000);
    const invFreq = ropeInvFrequencies(a);
    for (const [row, i] of [[0, 0], [2, 5], [1, 63]] as const) {
      const angle = Math.fround((100000 + row) * invFreq[i]!);
      expect(cos[row * 64 + i]).toBe(Math.fround(Math.cos(angle)));
      expect(sin[row * 64 + i]).toBe(Math.fround(Math.sin(angle)));
    }
  });

  it("q·k after rotate-half RoPE depends only on the relative position", () => {
    const args = small({ dim: 64, n_heads: 2, n_kv_heads: 2 }); // head_dim 32
    const hd = headDim(args);
    const q0 = randomVector(hd, 1);
    const k0 = randomVector(hd, 2);
    const dotAt = (m: number, n: number) => {
      const q = q0.slice();
      const k = k0.slice();
      const t = ropeCosSin(args, Math.max(m, n) + 1);
      applyRotaryHalf(q, 0, hd, t.cos, t.sin, m);
      applyRotaryHalf(k, 0, hd, t.cos, t.sin, n);
      return q.reduce((s, v, i) => s + v * k[i]!, 0);
    };
    expect(dotAt(7, 3)).toBeCloseTo(dotAt(27, 23), 4);
    expect(Math.abs(dotAt(7, 3) - dotAt(7, 4))).toBeGreaterThan(1e-3);
  });
});

describe("Meta ↔ HF weight layout", () => {
  it("permutes rows as convert_llama_weights_to_hf.py does (hand-checked, one head of size 4)", () => {
    const meta: Tensor = { shape: [4, 2], data: Float32Array.of(0, 0, 1, 1, 2, 2, 3, 3) };
    // HF row j·hd/2 + i takes Meta row 2i + j: rows [0, 2, 1, 3].
    expect([...permuteMetaToHf(meta, 1).data]).toEqual([0, 0, 2, 2, 1, 1, 3, 3]);
  });

  it("round-trips", () => {
    const w: Tensor = { shape: [4 * 16, 8], data: randomVector(4 * 16 * 8, 3) };
    expect(permuteHfToMeta(permuteMetaToHf(w, 4), 4).data).toEqual(w.data);
    expect(permuteMetaToHf(permuteHfToMeta(w, 4), 4).data).toEqual(w.data);
    expect(permuteMetaToHf(w, 4).data).not.toEqual(w.data);
  });

  it("Meta's interleaved RoPE on Meta rows equals HF rotate-half RoPE on permuted rows", () => {
    const args = small({ dim: 64, n_heads: 4, n_kv_heads: 4 }); // head_dim 16
    const hd = headDim(args);
    const nHeads = 4;
    const metaQ = randomVector(nHeads * hd, 4); // one projected token, Meta layout
    const t = ropeCosSin(args, 10);
    const hfQ = permuteMetaToHf({ shape: [nHeads * hd, 1], data: metaQ.slice() }, nHeads).data;
    for (let h = 0; h < nHeads; h++) {
      applyRotaryInterleaved(metaQ, h * hd, hd, t.cos, t.sin, 9);
      applyRotaryHalf(hfQ, h * hd, hd, t.cos, t.sin, 9);
    }
    const metaAsHf = permuteMetaToHf({ shape: [nHeads * hd, 1], data: metaQ }, nHeads).data;
    expect(maxAbsDiff(metaAsHf, hfQ)).toBeLessThan(1e-6);
  });

  it("rejects shapes that do not split into heads", () => {
    expect(() => permuteMetaToHf({ shape: [6, 1], data: new Float32Array(6) }, 4)).toThrow(/heads/);
  });
});

describe("ReferenceModel", () => {
  const tokens = [5, 17, 250, 3, 99, 42, 42, 7, 1, 0, 299, 123];

  it("cached incremental decoding equals a full recompute at every step", () => {
    for (const args of [small(), small({ n_kv_heads: 1 }), small({ tie_word_embeddings: true })]) {
      const model = new ReferenceModel(args, randomWeights(args, 11));
      const cache = model.newCache();
      for (let s = 0; s < tokens.length; s++) {
        const incremental = model.forward([tokens[s]!], s, cache);
        const full = model.forward(tokens.slice(0, s + 1), 0, model.newCache());
        expect(maxAbsDiff(incremental, full)).toBeLessThan(1e-5);
      }
      expect(cache.length).toBe(tokens.length);
    }
  });

  it("chunked prefill and allLogits agree with single-token steps", () => {
    const args = small();
    const model = new ReferenceModel(args, randomWeights(args, 12));
    const all = model.forward(tokens, 0, model.newCache(), { allLogits: true });
    expect(all.length).toBe(tokens.length * args.vocab_size);
    const cache = model.newCache();
    model.forward(tokens.slice(0, 5), 0, cache);
    const chunk = model.forward(tokens.slice(5, 9), 5, cache, { allLogits: true });
    const V = args.vocab_size;
    expect(maxAbsDiff(chunk, all.subarray(5 * V, 9 * V))).toBeLessThan(1e-5);
    // Rewinding overwrites: running position 5 again gives row 5 again.
    const again = model.forward([tokens[5]!], 5, cache);
    expect(cache.length).toBe(6);
    expect(maxAbsDiff(again, all.subarray(5 * V, 6 * V))).toBeLessThan(1e-5);
  });

  it("GQA equals MHA with each kv head repeated n_rep times consecutively", () => {
    const gqa = small({ n_heads: 8, n_kv_heads: 2, dim: 64 }); // n_rep 4, head_dim 8
    const mha = { ...gqa, n_kv_heads: 8 };
    const hd = headDim(gqa);
    const weights = loadAll(randomWeights(gqa, 13));
    const repeated = new Map(weights);
    for (let l = 0; l < gqa.n_layers; l++) {
      const n = layerWeightNames(l);
      for (const name of [n.k, n.v]) {
        const w = weights.get(name)!;
        const data = new Float32Array(8 * hd * gqa.dim);
        // MHA kv head j is GQA kv head ⌊j / 4⌋.
        for (let j = 0; j < 8; j++) data.set(w.data.subarray(Math.floor(j / 4) * hd * gqa.dim, (Math.floor(j / 4) + 1) * hd * gqa.dim), j * hd * gqa.dim);
        repeated.set(name, { shape: [8 * hd, gqa.dim], data });
      }
    }
    const a = new ReferenceModel(gqa, inMemoryWeights(gqa, weights)).forward(tokens, 0, new KVCache(gqa, 16), { allLogits: true });
    const b = new ReferenceModel(mha, inMemoryWeights(mha, repeated)).forward(tokens, 0, new KVCache(mha, 16), { allLogits: true });
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);

    // The grouping matters: pairing query head j with kv head j mod 2 instead gives other logits.
    const wrong = new Map(repeated);
    for (let l = 0; l < gqa.n_layers; l++) {
      const n = layerWeightNames(l);
      for (const name of [n.k, n.v]) {
        const w = weights.get(name)!;
        const data = new Float32Array(8 * hd * gqa.dim);
        for (let j = 0; j < 8; j++) data.set(w.data.subarray((j % 2) * hd * gqa.dim, ((j % 2) + 1) * hd * gqa.dim), j * hd * gqa.dim);
        wrong.set(name, { shape: [8 * hd, gqa.dim], data });
      }
    }
    const c = new ReferenceModel(mha, inMemoryWeights(mha, wrong)).forward(tokens, 0, new KVCache(mha, 16), { allLogits: true });
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-3);
  });

  it("a tied head equals an untied head holding a copy of the embedding", () => {
    const tied = small({ tie_word_embeddings: true });
    const untied = { ...tied, tie_word_embeddings: false };
    const weights = loadAll(randomWeights(tied, 14));
    expect(weights.has(LM_HEAD)).toBe(false);
    const withHead = new Map(weights).set(LM_HEAD, { ...weights.get(EMBED_TOKENS)!, data: weights.get(EMBED_TOKENS)!.data.slice() });
    const a = new ReferenceModel(tied, inMemoryWeights(tied, weights)).forward(tokens, 0, new KVCache(tied, 16));
    const b = new ReferenceModel(untied, inMemoryWeights(untied, withHead)).forward(tokens, 0, new KVCache(untied, 16));
    expect(maxAbsDiff(a, b)).toBe(0);
    // And an independent head changes the logits.
    const other = new ReferenceModel(untied, randomWeights(untied, 14)).forward(tokens, 0, new KVCache(untied, 16));
    expect(maxAbsDiff(a, other)).toBeGreaterThan(0.1);
  });

  it("norm weights, RoPE scaling and positions all influence the logits", () => {
    const args = small();
    const base = new ReferenceModel(args, randomWeights(args, 15)).forward(tokens, 0, new KVCache(args, 16));
    const unscaled = { ...args, use_scaled_rope: false, rope_scaling: null };
    const noScaling = new ReferenceModel(unscaled, randomWeights(unscaled, 15)).forward(tokens, 0, new KVCache(args, 16));
    expect(maxAbsDiff(base, noScaling)).toBeGreaterThan(1e-4);
    const weights = loadAll(randomWeights(args, 15));
    weights.get("model.norm.weight")!.data.fill(1);
    const unitNorm = new ReferenceModel(args, inMemoryWeights(args, weights)).forward(tokens, 0, new KVCache(args, 16));
    expect(maxAbsDiff(base, unitNorm)).toBeGreaterThan(1e-3);
  });

  it("produces logits of moderate size from random weights (well-conditioned)", () => {
    const args = PRESETS.tiny;
    const logits = new ReferenceModel(args, randomWeights(args, 1)).forward([128000, 9906], 0, new KVCache(args, 4));
    expect(logits.length).toBe(128256);
    let sum = 0;
    let sumSq = 0;
    for (const v of logits) {
      sum += v;
      sumSq += v * v;
    }
    const std = Math.sqrt(sumSq / logits.length - (sum / logits.length) ** 2);
    expect(std).toBeGreaterThan(0.3);
    expect(std).toBeLessThan(3);
  });

  it("rejects bad input with the offending field", () => {
    const args = small();
    const model = new ReferenceModel(args, randomWeights(args, 16));
    const cache = model.newCache(8);
    expect(() => model.forward([], 0, cache)).toThrow(/tokens/);
    expect(() => model.forward([300], 0, cache)).toThrow(/tokens\[0\].*300/);
    expect(() => model.forward([1.5], 0, cache)).toThrow(/tokens\[0\]/);
    expect(() => model.forward([1], 1, cache)).toThrow(/startPos/);
    expect(() => model.forward([1, 2, 3, 4, 5, 6, 7, 8, 9], 0, cache)).toThrow(/maxSeqLen/);
    expect(() => model.forward([1], 0, new KVCache(small({ n_layers: 3 }), 8))).toThrow(/cache/);
    expect(() => new KVCache(args, 0)).toThrow(/maxSeqLen/);
    expect(() => new ReferenceModel(small({ dim: 64 }), randomWeights(args, 1))).toThrow(/shape/);
  });
});
