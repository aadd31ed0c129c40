// The static-KV decoder graph (gpu flavour, "static-kv" interface) driven by src/gpu/fast-decoder
// on onnxruntime's CPU EP, against the reference forward pass: logits at every greedy step, the
// graph's own device-side token, queued steps read back through the token ring, cache reuse, and
// the file layout (shared weights, no host-side shape nodes).
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StaticKvDecoder } from "../../src/gpu/fast-decoder/static-kv-decoder.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { buildModelFolder, decodeModel, onnxFileName, staticKvFileName, storedWeights, type ModelDtype } from "../../src/model/onnx/index.js";
import { REPO_ROOT, TEST_PROMPT, argmax, relativeError, tinyWeights } from "../helpers/models.js";

const ROOT = join(REPO_ROOT, "build", "test-models", `static-kv-${process.pid}`);
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const built = new Map<string, Promise<string>>();
function modelDir(preset: string, dtype: ModelDtype): Promise<string> {
  const key = `${preset}-${dtype}`;
  let dir = built.get(key);
  if (!dir) {
    const out = join(ROOT, key);
    mkdirSync(out, { recursive: true });
    dir = buildModelFolder({ outDir: out, weights: tinyWeights(preset), flavour: "gpu", dtypes: [dtype], accuracyLevel: 0, staticKv: true, tokenizerDir: null }).then(() => out);
    built.set(key, dir);
  }
  return dir;
}

async function openDecoder(preset: string, dtype: ModelDtype, capacity = 64, logits = true): Promise<StaticKvDecoder> {
  const dir = await modelDir(preset, dtype);
  return StaticKvDecoder.open({ modelPath: join(dir, "onnx", staticKvFileName(dtype)), device: "cpu", capacity, logits });
}

/** The reference's greedy continuation of `prompt`. */
function referenceGreedy(preset: string, dtype: ModelDtype, prompt: number[], count: number): number[] {
  const weights = tinyWeights(preset);
  const reference = new ReferenceModel(weights.args, storedWeights(weights, dtype));
  const cache = reference.newCache(prompt.length + count);
  const tokens: number[] = [];
  let input = prompt;
  let position = 0;
  while (tokens.length < count) {
    tokens.push(argmax(reference.forward(input, position, cache)));
    position += input.length;
    input = [tokens.at(-1)!];
  }
  return tokens;
}

/** Greedy decoding through the decoder and the reference side by side; worst logits error and token mismatches. */
async function parity(preset: string, dtype: ModelDtype, steps = 24) {
  const weights = tinyWeights(preset);
  const reference = new ReferenceModel(weights.args, storedWeights(weights, dtype));
  const cache = reference.newCache(TEST_PROMPT.length + steps + 1);
  const decoder = await openDecoder(preset, dtype);
  const result = { worst: 0, mismatches: [] as number[] };
  try {
    let want = reference.forward(TEST_PROMPT, 0, cache);
    let got = await decoder.prefill(TEST_PROMPT);
    let position = TEST_PROMPT.length;
    for (let s = 0; s < steps; s++) {
      result.worst = Math.max(result.worst, relativeError(got.logits!, want));
      // The token is computed on the device by the graph; it must be the argmax of the reference.
      if (got.token !== argmax(want)) result.mismatches.push(s);
      want = reference.forward([argmax(want)], position, cache);
      position++;
      got = await decoder.step();
    }
  } finally {
    await decoder.dispose();
  }
  return result;
}

describe("static-KV graph on onnxruntime CPU", () => {
  it.each([
    ["tiny", "fp32"],
    ["tiny", "q4"],
    ["tiny-mqa", "q4"], // 4 query heads per kv head
    ["tiny-mha", "fp32"],
    ["tiny-tied", "fp32"],
    ["tiny-tied", "q4"],
  ] as const)("%s %s: logits and the device-side greedy token match the reference at every step", async (preset, dtype) => {
    const r = await parity(preset, dtype);
    expect(r.worst).toBeLessThan(1e-4);
    expect(r.mismatches).toEqual([]);
  });

  it.each([
    ["tiny", "q4", 7],
    ["tiny-tied", "fp32", 64], // the whole ring in one readback
  ] as const)("%s %s: queued steps (readback every %i) return the reference's greedy tokens", async (preset, dtype, every) => {
    const decoder = await openDecoder(preset, dtype, 128, false);
    try {
      const first = await decoder.prefill(TEST_PROMPT);
      const batches: number[][] = [];
      const rest = await decoder.steps(40, every, (t) => void batches.push(t));
      expect([first.token, ...rest]).toEqual(referenceGreedy(preset, dtype, TEST_PROMPT, 41));
      expect(batches.map((b) => b.length)).toEqual(Array.from({ length: Math.ceil(40 / every) }, (_, i) => Math.min(every, 40 - i * every)));
      expect(decoder.cachedTokens).toBe(TEST_PROMPT.length + 40);
      // Stopping early from the callback: the batch that asked to stop is the last one run.
      await decoder.prefill(TEST_PROMPT);
      const stopped = await decoder.steps(40, 8, () => false);
      expect(stopped).toEqual(rest.slice(0, 8));
    } finally {
      await decoder.dispose();
    }
  });

  it("q4f16 (float16 I/O and caches): logits within float16 rounding of the reference", async () => {
    const r = await parity("tiny", "q4f16", 12);
    expect(r.worst).toBeLessThan(1e-2);
  });

  it("reuses a cached prefix: appending to the first k tokens equals a fresh run of the whole sequence", async () => {
    const weights = tinyWeights("tiny");
    const reference = new ReferenceModel(weights.args, storedWeights(weights, "fp32"));
    const decoder = await openDecoder("tiny", "fp32");
    try {
      await decoder.prefill(TEST_PROMPT);
      await decoder.step();
      await decoder.step();
      const keep = 5;
      const suffix = [4521, 77, 9000];
      const got = await decoder.prefill(suffix, keep);
      const cache = reference.newCache(32);
      const want = reference.forward([...TEST_PROMPT.slice(0, keep), ...suffix], 0, cache);
      expect(relativeError(got.logits!, want)).toBeLessThan(1e-4);
      expect(got.token).toBe(argmax(want));
      expect(decoder.cachedTokens).toBe(keep + suffix.length);
    } finally {
      await decoder.dispose();
    }
  });

  it("grows the host caches past their first rows: long prefill, a suffix on top, steps across the next doubling", async () => {
    // The CPU caches start at 256 rows and double (to 512, then 1024) as the sequence grows; every
    // growth must carry each of the 4 kv heads' kept rows over exactly.
    const long = Array.from({ length: 300 }, (_, i) => (i * 7919 + 11) % 128000);
    const keep = 290;
    const suffix = [4521, 77, 9000, 13, 2];
    const steps = 230; // 295 → 525 tokens: crosses 512
    const sequence = [...long.slice(0, keep), ...suffix];
    const want = referenceGreedy("tiny-mha", "fp32", sequence, steps + 1);
    const decoder = await openDecoder("tiny-mha", "fp32", 1024, false);
    try {
      await decoder.prefill(long);
      const first = await decoder.prefill(suffix, keep);
      const rest = await decoder.steps(steps, 16);
      expect([first.token, ...rest]).toEqual(want);
      expect(decoder.cachedTokens).toBe(sequence.length + steps);
    } finally {
      await decoder.dispose();
    }
  }, 60_000);

  it("feeds tokens chosen by the caller, with per-call logits (the sampled path)", async () => {
    const weights = tinyWeights("tiny");
    const reference = new ReferenceModel(weights.args, storedWeights(weights, "fp32"));
    const cache = reference.newCache(32);
    const decoder = await openDecoder("tiny", "fp32", 32, false);
    try {
      let want = reference.forward(TEST_PROMPT, 0, cache);
      let got = await decoder.prefill(TEST_PROMPT, 0, { logits: true });
      let position = TEST_PROMPT.length;
      for (let s = 0; s < 6; s++) {
        expect(relativeError(got.logits!, want)).toBeLessThan(1e-4);
        expect(got.token).toBe(argmax(want));
        // Not the greedy token: the caller's choice is what the cache must hold next.
        const chosen = (argmax(want) + 1000 * (s + 1)) % want.length;
        want = reference.forward([chosen], position++, cache);
        got = await decoder.step({ token: chosen, logits: true });
      }
      expect(decoder.cachedTokens).toBe(TEST_PROMPT.length + 6);
      // A plain step afterwards has no logits and continues from the cache.
      expect((await decoder.step()).logits).toBeUndefined();
    } finally {
      await decoder.dispose();
    }
  });

  it("rejects misuse with errors naming the problem", async () => {
    const decoder = await openDecoder("tiny", "fp32", 12);
    try {
      await expect(decoder.step()).rejects.toThrow(/call prefill first/);
      await expect(decoder.steps(2)).rejects.toThrow(/not available with logits: true/);
      await expect(decoder.prefill([])).rejects.toThrow(/must not be empty/);
      await expect(decoder.prefill(new Array(12).fill(1))).rejects.toThrow(/12 tokens leave no room in a cache of capacity 12/);
      await decoder.prefill([1, 2, 3]);
      await expect(decoder.prefill([4], 7)).rejects.toThrow(/keep must be an integer in \[0, 3\]/);
      for (let i = 0; i < 8; i++) await decoder.step();
      await expect(decoder.step()).rejects.toThrow(/1 more tokens do not fit in the cache \(capacity 12, holding 11\)/);
    } finally {
      await decoder.dispose();
    }
    const dir = await modelDir("tiny", "fp32");
    await expect(StaticKvDecoder.open({ modelPath: join(dir, "onnx", onnxFileName("fp32")), device: "cpu", capacity: 16 })).rejects.toThrow(
      /not a static-KV decoder graph: it has no input seqlens_k/,
    );
    await expect(StaticKvDecoder.open({ modelPath: join(dir, "onnx", staticKvFileName("fp32")), device: "cpu", capacity: 1 })).rejects.toThrow(/capacity/);
  });

  it("shares the transformers.js graph's weight file and needs no host-side shape computation", async () => {
    const dir = await modelDir("tiny", "q4");
    const base = decodeModel(readFileSync(join(dir, "onnx", onnxFileName("q4"))));
    const fast = decodeModel(readFileSync(join(dir, "onnx", staticKvFileName("q4"))));
    const where = (m: typeof base) =>
      new Map(m.graph.initializer.filter((t) => t.dataLocation === 1).map((t) => [t.name, JSON.stringify(t.externalData)]));
    const baseLocations = where(base);
    const fastLocations = where(fast);
    expect(fastLocations.size).toBeGreaterThan(0);
    for (const [name, location] of fastLocations) expect(baseLocations.get(name)).toBe(location);
    const ops = new Set(fast.graph.node.map((n) => n.opType));
    // Shape reads and ArgMax (one WebGPU thread per output) are what the graph avoids.
    for (const op of ["Shape", "ArgMax", "Cast"]) expect(ops.has(op)).toBe(false);
    expect(fast.graph.input.map((i) => i.name).slice(0, 5)).toEqual(["input_ids", "seqlens_k", "total_sequence_length", "token_ring", "ring_slot"]);
    expect(fast.graph.output.map((o) => o.name).slice(0, 3)).toEqual(["logits", "next_token", "token_ring_next"]);
  });
});
