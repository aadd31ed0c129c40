import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Rng } from "../../src/model/rng.js";
import {
  applyPenalties,
  argmax,
  checkSamplingParams,
  GREEDY_SAMPLING,
  logSoftmax,
  REFERENCE_SAMPLING,
  sampleToken,
  sampleTopP,
  samplingDistribution,
  topLogprobs,
  topPKeptCount,
  type SamplingParams,
} from "../../src/model/sampling.js";

const params = (p: Partial<SamplingParams>): SamplingParams => ({ ...REFERENCE_SAMPLING, ...p });

/**
 * The reference rule transcribed directly (generation.py `sample_top_p`, preceded by HF-style top-k):
 * softmax(l / T), full sort by probability (ties: lower id first), keep the top k, then keep a token
 * when the renormalised mass before it is ≤ p.
 */
function bruteForce(logits: Float32Array, T: number, topP: number, topK: number): Map<number, number> {
  const max = logits.reduce((m, l) => Math.max(m, l), -Infinity);
  const w = Array.from(logits, (l) => Math.exp((l - max) / T));
  let order = w.map((_, i) => i).sort((a, b) => w[b]! - w[a]! || a - b);
  if (topK > 0) order = order.slice(0, topK);
  const mass = order.reduce((s, i) => s + w[i]!, 0);
  const kept: number[] = [];
  let before = 0;
  for (const i of order) {
    if (before / mass > topP && kept.length > 0) break;
    kept.push(i);
    before += w[i]!;
  }
  const keptMass = kept.reduce((s, i) => s + w[i]!, 0);
  return new Map(kept.filter((i) => w[i]! > 0).map((i) => [i, w[i]! / keptMass]));
}

describe("Rng (xoshiro128** seeded by splitmix64)", () => {
  // Produced by the reference C implementations (prng.di.unimi.it splitmix64.c and
  // xoshiro128starstar.c): state = two splitmix64 outputs split into low/high 32-bit words.
  it.each([
    [0n, [3737715805, 2584255861, 2876756834, 3286328325, 1553311962, 1625202774]],
    [1n, [1695105466, 1423115009, 634581793, 1068227753, 716759206, 4186505319]],
    [42n, [1776835114, 4165204688, 17111135, 2317295270, 2792088233, 2554630222]],
    [18446744073709551615n, [477689756, 2493998634, 555695776, 607808419, 61340979, 301466976]],
  ])("seed %s matches the C reference", (seed, expected) => {
    const rng = new Rng(seed);
    expect(expected.map(() => rng.nextUint32())).toEqual(expected);
  });

  it("number and bigint seeds agree; -1 is 2^64 - 1", () => {
    expect(new Rng(42).nextUint32()).toBe(new Rng(42n).nextUint32());
    expect(new Rng(-1).nextUint32()).toBe(477689756);
    expect(() => new Rng(1.5)).toThrow(/seed/);
    expect(() => new Rng(2 ** 60)).toThrow(/seed/);
  });

  it("nextFloat is in [0, 1) with mean 1/2; nextNormal and fillNormal have mean 0 and variance 1", () => {
    const rng = new Rng(7);
    const n = 100_000;
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.nextFloat();
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
    }
    expect(outside).toBe(0);
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005); // 5 standard errors
    const normals: number[][] = [Array.from({ length: n }, () => rng.nextNormal()), [...rng.fillNormal(new Float32Array(n))]];
    for (const xs of normals) {
      const mean = xs.reduce((s, x) => s + x, 0) / n;
      const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
      expect(Math.abs(mean)).toBeLessThan(0.016);
      expect(Math.abs(variance - 1)).toBeLessThan(0.03);
    }
    const scaled = new Rng(8).fillNormal(new Float32Array(n), 0.1, 1);
    expect(Math.abs(scaled.reduce((s, x) => s + x, 0) / n - 1)).toBeLessThan(0.002);
  });

  it("derive gives independent, label-specific streams; state round-trips", () => {
    expect(Rng.derive(1, "a").nextUint32()).toBe(Rng.derive(1, "a").nextUint32());
    expect(Rng.derive(1, "a").nextUint32()).not.toBe(Rng.derive(1, "b").nextUint32());
    expect(Rng.derive(1, "a").nextUint32()).not.toBe(Rng.derive(2, "a").nextUint32());
    const rng = new Rng(3);
    rng.nextUint32();
    const copy = Rng.fromState(rng.getState());
    expect([copy.nextUint32(), copy.nextFloat()]).toEqual([rng.nextUint32(), rng.nextFloat()]);
    expect(() => Rng.fromState([0, 0, 0, 0])).toThrow(/state/);
    expect(() => Rng.fromState([1, 2, 3, 2 ** 32])).toThrow(/state/);
  });
});

describe("greedy", () => {
  it("argmax returns the first maximum", () => {
    expect(argmax(Float32Array.of(1, 3, 3, 2))).toBe(1);
    expect(argmax(Float32Array.of(-Infinity, -Infinity))).toBe(0);
    expect(sampleToken(Float32Array.of(0, 5, 2, 5), GREEDY_SAMPLING, new Rng(1))).toBe(1);
  });

  it("temperature 0 ignores top-p/top-k and does not consume randomness", () => {
    const rng = new Rng(1);
    expect(sampleToken(Float32Array.of(0, 1, 9, 2), params({ temperature: 0, topP: 0.1, topK: 1 }), rng)).toBe(2);
    expect(rng.nextUint32()).toBe(1695105466);
  });

  it("NaN logits are reported, not sampled", () => {
    expect(() => argmax(Float32Array.of(1, Number.NaN))).toThrow(/logits\[1\] is NaN/);
    expect(() => sampleToken(Float32Array.of(Number.NaN, 1), REFERENCE_SAMPLING, new Rng(1))).toThrow(/NaN/);
  });
});

describe("top-p (reference sample_top_p) and top-k", () => {
  it("keeps a token when the mass before it is ≤ p (exact binary probabilities)", () => {
    const probs = [0.5, 0.25, 0.125, 0.125];
    expect(topPKeptCount(probs, 0)).toBe(1); // the top token is always kept
    expect(topPKeptCount(probs, 0.4999)).toBe(1);
    expect(topPKeptCount(probs, 0.5)).toBe(2); // mass before #2 is exactly 0.5
    expect(topPKeptCount(probs, 0.74)).toBe(2);
    expect(topPKeptCount(probs, 0.75)).toBe(3);
    expect(topPKeptCount(probs, 0.875)).toBe(4);
    expect(topPKeptCount(probs, 1)).toBe(4);
  });

  it("samplingDistribution keeps the reference set, renormalised, on a hand-made distribution", () => {
    // Probabilities 0.1, 0.4, 0.05, 0.25, 0.2 in shuffled order; T = 1.
    const logits = Float32Array.from([0.1, 0.4, 0.05, 0.25, 0.2], Math.log);
    const d = samplingDistribution(logits, params({ temperature: 1, topP: 0.7 }));
    // Sorted: 0.4 (id 1), 0.25 (id 3), 0.2 (id 4) … mass before id 4 is 0.65 ≤ 0.7, before id 0 is 0.85.
    expect([...d.ids]).toEqual([1, 3, 4]);
    [0.4 / 0.85, 0.25 / 0.85, 0.2 / 0.85].forEach((p, i) => expect(d.probs[i]).toBeCloseTo(p, 6));
    expect([...samplingDistribution(logits, params({ temperature: 1, topP: 0.6 })).ids]).toEqual([1, 3]);
    // Top-k 2 first, then top-p on the renormalised pair: 0.4/0.65 = 0.615 > 0.5 → only id 1.
    expect([...samplingDistribution(logits, params({ temperature: 1, topP: 0.5, topK: 2 })).ids]).toEqual([1]);
    expect([...samplingDistribution(logits, params({ temperature: 1, topP: 0.7, topK: 2 })).ids]).toEqual([1, 3]);
  });

  it("equal probabilities at the cut keep the lower ids", () => {
    const logits = Float32Array.of(0, 1, 1, 1, 1);
    expect([...samplingDistribution(logits, params({ temperature: 1, topP: 0.3 })).ids]).toEqual([1, 2]);
    expect([...samplingDistribution(logits, params({ temperature: 1, topP: 1, topK: 3 })).ids]).toEqual([1, 2, 3]);
  });

  it("matches a brute-force transcription of the rule on random logits", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 2, max: 3000 }),
        fc.double({ min: 0.05, max: 8, noNaN: true }),
        fc.double({ min: 0.05, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 1000 }).map((k) => k / 1000), // p within 1e-14 of a cumulative sum is decided by summation order
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100 })),
        (seed, vocab, spread, T, topP, topK) => {
          const logits = new Rng(seed).fillNormal(new Float32Array(vocab), spread);
          const expected = bruteForce(logits, T, topP, topK);
          const d = samplingDistribution(logits, params({ temperature: T, topP, topK }));
          expect(new Set(d.ids)).toEqual(new Set(expected.keys()));
          d.ids.forEach((id, j) => expect(d.probs[j]).toBeCloseTo(expected.get(id)!, 9));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("matches the brute force on a 128k vocabulary (flat and peaked)", () => {
    for (const [spread, T, topP, topK] of [[1, 0.6, 0.9, 0], [5, 0.6, 0.9, 0], [2, 1, 0.999, 0], [2, 1, 1, 40], [0.01, 1, 0.5, 0]] as const) {
      const logits = new Rng(99).fillNormal(new Float32Array(128256), spread);
      const expected = bruteForce(logits, T, topP, topK);
      const d = samplingDistribution(logits, params({ temperature: T, topP, topK }));
      expect(d.ids.length).toBe(expected.size);
      expect([...d.ids].every((id) => expected.has(id))).toBe(true);
    }
  });

  it("sampleTopP on a probability vector only draws from the kept set", () => {
    const probs = [0.05, 0.5, 0.05, 0.25, 0.15];
    const rng = new Rng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampleTopP(probs, 0.8, rng));
    expect(seen).toEqual(new Set([1, 3, 4])); // 0.5, 0.25 before 0.15: mass 0.75 ≤ 0.8
  });

  it("sampling frequencies match the renormalised distribution (chi-square, fixed seed)", () => {
    const probs = [0.04, 0.4, 0.1, 0.25, 0.06, 0.15];
    const T = 0.7;
    const topP = 0.9; // tempered cumulative mass: 0.500, 0.756, 0.879, 0.948 → four kept
    // Expected distribution by hand: p^(1/T) normalised, then the reference top-p rule.
    const tempered = probs.map((p) => p ** (1 / T));
    const z = tempered.reduce((s, x) => s + x, 0);
    const q = tempered.map((x) => x / z);
    const order = q.map((_, i) => i).sort((a, b) => q[b]! - q[a]!);
    const kept: number[] = [];
    let before = 0;
    for (const i of order) {
      if (kept.length > 0 && before > topP) break;
      kept.push(i);
      before += q[i]!;
    }
    const keptMass = kept.reduce((s, i) => s + q[i]!, 0);

    const logits = Float32Array.from(probs, Math.log);
    const rng = new Rng(2024);
    const n = 20000;
    const counts = new Array<number>(probs.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, params({ temperature: T, topP }), rng)]!++;
    for (let i = 0; i < probs.length; i++) if (!kept.includes(i)) expect(counts[i]).toBe(0);
    const chi2 = kept.reduce((s, i) => {
      const e = (n * q[i]!) / keptMass;
      return s + (counts[i]! - e) ** 2 / e;
    }, 0);
    expect(kept.length).toBe(4);
    expect(chi2).toBeLessThan(16.27); // chi-square, 3 degrees of freedom, p = 0.001
  });

  it("is reproducible for a seed and differs across seeds", () => {
    const logits = new Rng(1).fillNormal(new Float32Array(5000), 2);
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => sampleToken(logits, REFERENCE_SAMPLING, rng));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });
});

describe("penalties", () => {
  it("apply the HF repetition rule, then OpenAI frequency and presence (hand-computed)", () => {
    const logits = Float32Array.of(2, -1, 0.5, 3, 1);
    applyPenalties(logits, [0, 1, 1, 3, 3, 3], params({ repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 0.25 }));
    // id 0: 2/2 = 1, then − (1·0.5 + 0.25) = 0.25
    // id 1: −1·2 = −2, then − (2·0.5 + 0.25) = −3.25
    // id 3: 3/2 = 1.5, then − (3·0.5 + 0.25) = −0.25
    expect([...logits]).toEqual([0.25, -3.25, 0.5, -0.25, 1]);
  });

  it("repetition penalty alone counts a token once; neutral settings change nothing", () => {
    const logits = Float32Array.of(4, -4);
    applyPenalties(logits, [0, 0, 0, 1], params({ repetitionPenalty: 4 }));
    expect([...logits]).toEqual([1, -16]);
    const untouched = Float32Array.of(1, 2);
    applyPenalties(untouched, [0, 1], REFERENCE_SAMPLING);
    expect([...untouched]).toEqual([1, 2]);
  });

  it("rejects token ids outside the vocabulary", () => {
    expect(() => applyPenalties(new Float32Array(3), [1, 3], params({ presencePenalty: 1 }))).toThrow(/previousTokens\[1\]/);
  });
});

describe("parameter validation", () => {
  it.each([
    [{ temperature: -1 }, "temperature"],
    [{ temperature: Number.POSITIVE_INFINITY }, "temperature"],
    [{ topP: 1.5 }, "topP"],
    [{ topP: Number.NaN }, "topP"],
    [{ topK: 2.5 }, "topK"],
    [{ topK: -1 }, "topK"],
    [{ repetitionPenalty: 0 }, "repetitionPenalty"],
    [{ frequencyPenalty: Number.NaN }, "frequencyPenalty"],
    [{ presencePenalty: Number.NEGATIVE_INFINITY }, "presencePenalty"],
  ] as Array<[Partial<SamplingParams>, string]>)("%j names %s", (change, field) => {
    expect(() => checkSamplingParams(params(change))).toThrow(new RegExp(`^${field}:`));
  });
});

describe("log-probabilities", () => {
  it("logSoftmax matches log(exp(l) / Σ exp)", () => {
    const logits = Float32Array.of(1, 2, 3, -1000);
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    const lp = logSoftmax(logits);
    [1, 2, 3].forEach((l, i) => expect(lp[i]).toBeCloseTo(Math.log(Math.exp(l) / z), 6));
    expect(lp[3]).toBeCloseTo(-1000 - Math.log(z), 3);
    expect(() => logSoftmax(Float32Array.of(-Infinity))).toThrow(/-Infinity/);
  });

  it("topLogprobs returns the k best, ties by lower id", () => {
    const lp = Float32Array.of(-3, -1, -2, -1, -0.5, -5);
    expect(topLogprobs(lp, 3)).toEqual([
      { id: 4, logprob: -0.5 },
      { id: 1, logprob: -1 },
      { id: 3, logprob: -1 },
    ]);
    expect(topLogprobs(lp, 0)).toEqual([]);
    expect(topLogprobs(lp, 10).map((e) => e.id)).toEqual([4, 1, 3, 2, 0, 5]);
    expect(() => topLogprobs(lp, -1)).toThrow(/k/);
  });

  it("topLogprobs agrees with a full sort on random input", () => {
    const lp = new Rng(4).fillNormal(new Float32Array(10000));
    const full = [...lp.keys()].sort((a, b) => lp[b]! - lp[a]! || a - b).slice(0, 20);
    expect(topLogprobs(lp, 20).map((e) => e.id)).toEqual(full);
  });
});
