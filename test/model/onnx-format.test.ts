// What the builder writes, checked with onnxruntime as the independent reader: the 4-bit layouts
// (against onnxruntime's own DequantizeLinear, MatMulNBits and GatherBlockQuantized kernels), the
// graph interface transformers.js relies on, external data layout, num_logits_to_keep, and errors.
import fc from "fast-check";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { defineModelArgs, ffnHiddenSize, PRESETS } from "../../src/model/config.js";
import { GraphBuilder, MICROSOFT_DOMAIN } from "../../src/model/onnx/graph-builder.js";
import {
  buildModelFolder,
  decodeModel,
  DataType,
  dequantizeQ4,
  int4Transposed,
  quantizeQ4,
  roundToFloat16,
  scalesTransposed,
  storedWeights,
  type ModelDtype,
} from "../../src/model/onnx/index.js";
import { encodeModel } from "../../src/model/onnx/onnx-proto.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { randomWeights, weightSourceFrom } from "../../src/model/weights.js";
import { OrtDecoder, TEST_PROMPT, relativeError, tinyModelDir, tinyWeights } from "../helpers/models.js";

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: rows * cols }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31 - 0.5;
  });
}

/** Runs a one-node-chain graph whose operands are inline constants; returns its output as float32. */
async function runConstantGraph(build: (g: GraphBuilder) => string, outputDims: number[], feeds: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
  const g = new GraphBuilder();
  for (const [name, t] of Object.entries(feeds)) g.input(name, t.type === "int64" ? DataType.INT64 : DataType.FLOAT, [...t.dims]);
  const out = build(g);
  g.output(out, DataType.FLOAT, outputDims);
  const bytes = encodeModel(
    g.toModel({ graphName: "t", opsets: { "": 21, "com.microsoft": 1 }, producerName: "test", producerVersion: "1", locate: () => [] }),
  );
  const session = await ort.InferenceSession.create(bytes);
  const result = await session.run(feeds);
  await session.release();
  return result[out].data as Float32Array;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  return t;
}

describe("4-bit layouts, read back by onnxruntime's kernels", () => {
  const N = 6;
  const K = 64;
  const q = quantizeQ4(randomMatrix(N, K, 7), N, K);
  const dequantized = dequantizeQ4(q); // [N, K]

  it("INT4 [K, N] + DequantizeLinear(axis 0, block 32) gives the dequantised matrix transposed", async () => {
    const out = await runConstantGraph(
      (g) =>
        g.op("DequantizeLinear", [g.constant(DataType.INT4, [K, N], int4Transposed(q)), g.constant(DataType.FLOAT, [K / 32, N], scalesTransposed(q))], {
          axis: 0,
          block_size: 32,
        }),
      [K, N],
    );
    expect(Array.from(out)).toEqual(Array.from(transpose(dequantized, N, K)));
  });

  it("MatMulNBits B [N, K/32, 16] with scales [N, K/32]: identity · Wᵀ", async () => {
    const identity = new Float32Array(K * K);
    for (let i = 0; i < K; i++) identity[i * K + i] = 1;
    const out = await runConstantGraph(
      (g) =>
        g.op(
          "MatMulNBits",
          ["x", g.constant(DataType.UINT8, [N, K / 32, 16], q.packed), g.constant(DataType.FLOAT, [N, K / 32], q.scales)],
          { K, N, bits: 4, block_size: 32, accuracy_level: 0 },
          MICROSOFT_DOMAIN,
        ),
      [K, N],
      { x: new ort.Tensor("float32", identity, [K, K]) },
    );
    // MatMulNBits computes 0 · (-scale) as +0 where the dequantised value is -0; both are zero.
    expect(Array.from(out, (v) => v + 0)).toEqual(Array.from(transpose(dequantized, N, K), (v) => v + 0));
  });

  it("GatherBlockQuantized over [N, K/2] rows gives the dequantised rows", async () => {
    const rows = [4, 0, 4, 5];
    const out = await runConstantGraph(
      (g) =>
        g.op(
          "GatherBlockQuantized",
          [g.constant(DataType.UINT8, [N, K / 2], q.packed), "ids", g.constant(DataType.FLOAT, [N, K / 32], q.scales)],
          { bits: 4, block_size: 32, gather_axis: 0, quantize_axis: 1 },
          MICROSOFT_DOMAIN,
        ),
      [rows.length, K],
      { ids: new ort.Tensor("int64", BigInt64Array.from(rows, BigInt), [rows.length]) },
    );
    expect(Array.from(out)).toEqual(rows.flatMap((r) => Array.from(dequantized.subarray(r * K, (r + 1) * K))));
  });

  it("quantisation error is at most half a step, the block's extreme value is exact, scales are stored exactly", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -100, max: 100 }), { minLength: 32, maxLength: 32 }),
        fc.boolean(),
        (values, half) => {
          const maxAbs = Math.max(...values.map(Math.abs));
          // float16 scales below its normal range (6e-5) lose relative precision; weights are far larger.
          fc.pre(!half || maxAbs >= 1e-3);
          const data = Float32Array.from(values);
          const round = half ? roundToFloat16 : Math.fround;
          const block = quantizeQ4(data, 1, 32, round);
          const back = dequantizeQ4(block);
          const scale = block.scales[0];
          expect(round(scale)).toBe(scale);
          // The scale is extreme / -8, so the extreme value is code 0 (-8 steps) and exact (÷8 is exact).
          expect(Math.abs(scale)).toBe(half ? roundToFloat16(maxAbs / 8) : maxAbs / 8);
          if (!half) expect(values.some((v, i) => Math.abs(v) === maxAbs && back[i] === v)).toBe(true);
          // Values of the extreme's opposite sign can reach +8 steps, clamped to +7 (one step off).
          values.forEach((v, i) => expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(Math.abs(scale) * (Math.abs(v) > 7.5 * Math.abs(scale) ? 1.0001 : 0.5001) + 1e-30));
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("built model files", () => {
  const args = PRESETS.tiny;
  const hd = args.dim / args.n_heads;

  it.each(["standard", "gpu"] as const)("%s: inputs and outputs as transformers.js drives them", async (flavour) => {
    const dir = await tinyModelDir({ preset: "tiny", flavour, dtypes: ["q4f16"] });
    const session = await ort.InferenceSession.create(join(dir, "onnx/model_q4f16.onnx"));
    try {
      const meta = Object.fromEntries([...session.inputMetadata, ...session.outputMetadata].map((m) => [m.name, m.isTensor ? { type: m.type, shape: m.shape } : null]));
      expect(meta.input_ids).toEqual({ type: "int64", shape: ["batch_size", "sequence_length"] });
      expect(meta.attention_mask).toEqual({ type: "int64", shape: ["batch_size", "total_sequence_length"] });
      expect(meta.num_logits_to_keep).toEqual({ type: "int64", shape: [] });
      if (flavour === "standard") expect(meta.position_ids).toEqual({ type: "int64", shape: ["batch_size", "sequence_length"] });
      else expect(session.inputNames).not.toContain("position_ids");
      for (let i = 0; i < args.n_layers; i++) {
        for (const kv of ["key", "value"]) {
          expect(meta[`past_key_values.${i}.${kv}`]).toEqual({ type: "float16", shape: ["batch_size", args.n_kv_heads, "past_sequence_length", hd] });
          expect(meta[`present.${i}.${kv}`]).toEqual({ type: "float16", shape: ["batch_size", args.n_kv_heads, "total_sequence_length", hd] });
        }
      }
      expect(meta.logits).toEqual({ type: "float16", shape: ["batch_size", "logits_sequence_length", args.vocab_size] });
      expect(session.inputNames.length).toBe(4 * 1 + 2 * args.n_layers - (flavour === "gpu" ? 1 : 0));
    } finally {
      await session.release();
    }
  });

  it.each(["standard", "gpu"] as const)("%s: IR 10, opsets 21 + com.microsoft 1, the expected operators", async (flavour) => {
    const dir = await tinyModelDir({ preset: "tiny-tied", flavour, dtypes: ["q4"] });
    const model = decodeModel(readFileSync(join(dir, "onnx/model_q4.onnx")));
    expect(model.irVersion).toBe(10);
    expect(model.opsetImport).toEqual([
      { domain: "", version: 21 },
      { domain: "com.microsoft", version: 1 },
    ]);
    const counts: Record<string, number> = {};
    for (const n of model.graph.node) counts[`${n.domain}:${n.opType}`] = (counts[`${n.domain}:${n.opType}`] ?? 0) + 1;
    const L = PRESETS["tiny-tied"].n_layers;
    if (flavour === "standard") {
      expect(Object.keys(counts).filter((k) => !k.startsWith(":"))).toEqual([]);
      expect(counts[":DequantizeLinear"]).toBe(7 * L + 1); // q, k, v, o, gate, up, down per layer + head
    } else {
      // runtime-notes 10.3 op inventory: packed QKV, o, gate, up, down per layer plus the head.
      expect(counts["com.microsoft:MatMulNBits"]).toBe(5 * L + 1);
      expect(counts["com.microsoft:GroupQueryAttention"]).toBe(L);
      expect(counts["com.microsoft:SkipSimplifiedLayerNormalization"]).toBe(2 * L);
      expect(counts[":SimplifiedLayerNormalization"]).toBe(1);
      expect(counts["com.microsoft:GatherBlockQuantized"]).toBe(1);
      expect(counts[":MatMul"]).toBeUndefined();
    }
  });

  it("stores every weight externally at 4096-aligned, non-overlapping offsets", async () => {
    const dir = await tinyModelDir({ preset: "tiny", flavour: "gpu", dtypes: ["fp32"] });
    const model = decodeModel(readFileSync(join(dir, "onnx/model.onnx")));
    const dataSize = statSync(join(dir, "onnx/model.onnx_data")).size;
    const external = model.graph.initializer.filter((t) => t.dataLocation === 1);
    const entry = (t: (typeof external)[number], key: string) => t.externalData!.find((e) => e.key === key)!.value;
    const ranges = external.map((t) => ({ offset: Number(entry(t, "offset")), length: Number(entry(t, "length")), location: entry(t, "location"), t }));
    for (const r of ranges) {
      expect(r.location).toBe("model.onnx_data");
      expect(r.offset % 4096).toBe(0);
      expect(r.length).toBe(r.t.dims.reduce((a, b) => a * b, 1) * 4);
    }
    ranges.sort((a, b) => a.offset - b.offset);
    ranges.forEach((r, i) => i > 0 && expect(r.offset).toBeGreaterThanOrEqual(ranges[i - 1].offset + ranges[i - 1].length));
    expect(ranges.at(-1)!.offset + ranges.at(-1)!.length).toBe(dataSize);
    // Everything big is external; inline initializers are small shape/axis constants.
    for (const t of model.graph.initializer.filter((t) => t.dataLocation !== 1)) expect(t.rawData!.length).toBeLessThanOrEqual(64);
    // Every source tensor is accounted for: embedding, 9 per layer, final norm, head; packed QKV is one.
    const expected = args.vocab_size * args.dim * 2 + args.n_layers * (2 * args.dim + (args.n_heads + 2 * args.n_kv_heads) * hd * args.dim + args.n_heads * hd * args.dim + 3 * args.dim * ffnHiddenSize(args)) + args.dim;
    const cacheFloats = 2 * args.max_seq_len * (hd / 2);
    expect(ranges.reduce((n, r) => n + r.length, 0)).toBe(4 * (expected + cacheFloats));
  });

  it.each(["standard", "gpu"] as const)("%s: num_logits_to_keep 0 returns every position, n the last n", async (flavour) => {
    const dir = await tinyModelDir({ preset: "tiny", flavour, dtypes: ["fp32"] });
    const weights = tinyWeights("tiny");
    const reference = new ReferenceModel(weights.args, storedWeights(weights, "fp32"));
    const all = reference.forward(TEST_PROMPT, 0, reference.newCache(16), { allLogits: true });
    const V = args.vocab_size;
    const decoder = await OrtDecoder.open(dir, "fp32");
    try {
      for (const keep of [0, 1, 3]) {
        decoder.reset();
        const { logits, dims } = await decoder.step(TEST_PROMPT, keep);
        const rows = keep === 0 ? TEST_PROMPT.length : keep;
        expect(dims).toEqual([1, rows, V]);
        expect(relativeError(logits, all.subarray((TEST_PROMPT.length - rows) * V))).toBeLessThan(1e-4);
      }
    } finally {
      await decoder.release();
    }
  });
});

describe("build errors", () => {
  const outDir = "build/test-models/never-written";

  it("names a weight with the wrong shape before writing anything", async () => {
    const good = randomWeights(PRESETS.tiny, 1);
    const bad = { ...good, shape: (name: string) => (name === "model.layers.1.mlp.up_proj.weight" ? [191, 64] : good.shape(name)) };
    await expect(buildModelFolder({ outDir, weights: bad, flavour: "standard", dtypes: ["fp32"] })).rejects.toThrow(
      'weight "model.layers.1.mlp.up_proj.weight" has shape [191, 64], the config needs [192, 64]',
    );
  });

  it("explains a 4-bit input dimension that is not a multiple of 32", async () => {
    const args = defineModelArgs({ dim: 48, n_layers: 1, n_heads: 3, vocab_size: 256, multiple_of: 32 });
    const weights = weightSourceFrom(args, (_name, shape) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }));
    await expect(buildModelFolder({ outDir, weights, flavour: "standard", dtypes: ["q4"] })).rejects.toThrow(
      /model\.[\w.]+: 4-bit weights need an input dimension divisible by 32, got 48/,
    );
  });

  it.each([
    [{ dtypes: ["q8" as ModelDtype] }, /dtypes: unknown dtype "q8"/],
    [{ dtypes: [] }, /dtypes: expected a non-empty list/],
    [{ flavour: "cuda" as never }, /flavour: expected one of standard, gpu, got "cuda"/],
    [{ maxPositions: 0 }, /maxPositions: expected a positive integer/],
  ])("rejects bad options with the field named (%o)", async (override, message) => {
    await expect(buildModelFolder({ outDir, weights: randomWeights(PRESETS.tiny, 1), flavour: "gpu", dtypes: ["fp32"], ...override })).rejects.toThrow(message);
  });
});
