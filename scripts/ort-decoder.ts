/**
 * A built decoder graph (transformers.js layout) run one call at a time with its KV cache, as transformers.js
 * drives it, and the figures its logits are compared by: the oracle of the builder's tests
 * (test/helpers/models.ts) and of the model benchmark's parity check (scripts/bench-model.ts).
 * Here rather than under test/ so that scripts may use it too (tests may import scripts, not the other way).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { onnxFileName, type ModelDtype } from "../src/model/onnx/index.js";
import { floatValues } from "../src/gpu/ort-floats.js";

/** Session config entries that keep onnxruntime's fused 4-bit matmuls in float arithmetic. */
export const QDQ_FLOAT_ACCURACY = { session: { qdq_matmulnbits_accuracy_level: "0" } };

/** Last-axis argmax. */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** max |a - b| / max |b|: the error relative to the logits' scale. */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

/** Runs a built decoder one call at a time with its KV cache, as transformers.js drives it. */
export class OrtDecoder {
  private past: Record<string, ort.Tensor> = {};
  private length = 0;

  private constructor(
    readonly session: ort.InferenceSession,
    private readonly nLayers: number,
  ) {
    this.reset();
  }

  /** Opens `dir`'s `dtype` graph; by default on the CPU in float arithmetic (QDQ_FLOAT_ACCURACY), as the tests compare it. */
  static async open(
    dir: string,
    dtype: ModelDtype,
    options: ort.InferenceSession.SessionOptions = { executionProviders: ["cpu"], extra: QDQ_FLOAT_ACCURACY },
  ): Promise<OrtDecoder> {
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { num_hidden_layers: number };
    const session = await ort.InferenceSession.create(join(dir, "onnx", onnxFileName(dtype)), options);
    return new OrtDecoder(session, config.num_hidden_layers);
  }

  /** Empties the cache: past tensors shaped from the graph's input metadata, like transformers.js. */
  reset(): void {
    this.past = {};
    this.length = 0;
    for (const meta of this.session.inputMetadata) {
      if (!meta.name.startsWith("past_key_values.") || !meta.isTensor) continue;
      const dims = meta.shape.map((d) => (d === "batch_size" ? 1 : typeof d === "number" ? d : 0));
      this.past[meta.name] = meta.type === "float16" ? new ort.Tensor("float16", new Uint16Array(0), dims) : new ort.Tensor("float32", new Float32Array(0), dims);
    }
  }

  /** Feeds `tokens` after the cached ones; returns logits [kept positions × vocab] as float32. */
  async step(tokens: number[], numLogitsToKeep = 1): Promise<{ logits: Float32Array; dims: readonly number[] }> {
    const total = this.length + tokens.length;
    const feeds: Record<string, ort.Tensor> = {
      ...this.past,
      input_ids: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
      num_logits_to_keep: new ort.Tensor("int64", BigInt64Array.of(BigInt(numLogitsToKeep)), []),
    };
    if (this.session.inputNames.includes("position_ids")) {
      feeds.position_ids = new ort.Tensor("int64", BigInt64Array.from(tokens, (_, i) => BigInt(this.length + i)), [1, tokens.length]);
    }
    const out = await this.session.run(feeds);
    for (let i = 0; i < this.nLayers; i++) {
      this.past[`past_key_values.${i}.key`] = out[`present.${i}.key`];
      this.past[`past_key_values.${i}.value`] = out[`present.${i}.value`];
    }
    this.length = total;
    return { logits: floatValues(out.logits), dims: out.logits.dims };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

