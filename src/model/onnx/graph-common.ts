// What both graph flavours share: the dtype vocabulary, the decoder-with-past inputs and outputs
// transformers.js drives (runtime-notes 4-5), linear layers and embeddings in each weight format,
// the SwiGLU feed-forward, and the last-token logits slice.
import { ffnHiddenSize, headDim, type ModelArgs } from "../config.js";
import { ropeCosSin } from "../reference.js";
import { EMBED_TOKENS, LM_HEAD } from "../weights.js";
import { GraphBuilder, MICROSOFT_DOMAIN, type Dim } from "./graph-builder.js";
import { DataType, type DataTypeCode } from "./onnx-proto.js";
import { Q4_BLOCK_SIZE, float16Bits } from "./quantize.js";
import { WeightPlan, type Q4Initializers } from "./weight-plan.js";

/** standard: portable default-domain ops (onnxruntime CPU and any EP); gpu: onnxruntime-genai style contrib ops. */
export type GraphFlavour = "standard" | "gpu";
/** fp32 and q4 have float32 I/O; fp16 and q4f16 have float16 I/O, weights and caches. */
export type ModelDtype = "fp32" | "fp16" | "q4" | "q4f16";

export const GRAPH_FLAVOURS: readonly GraphFlavour[] = ["standard", "gpu"];
export const MODEL_DTYPES: readonly ModelDtype[] = ["fp32", "fp16", "q4", "q4f16"];

/** The file transformers.js loads for a dtype (DEFAULT_DTYPE_SUFFIX_MAPPING). */
export function onnxFileName(dtype: ModelDtype): string {
  return dtype === "fp32" ? "model.onnx" : `model_${dtype}.onnx`;
}

export function ioDataType(dtype: ModelDtype): DataTypeCode {
  return dtype === "fp16" || dtype === "q4f16" ? DataType.FLOAT16 : DataType.FLOAT;
}

export function isQuantized(dtype: ModelDtype): boolean {
  return dtype === "q4" || dtype === "q4f16";
}

/** Per-graph options that do not change the graph's interface. */
export interface GraphOptions {
  /** Rows of the rope cos/sin tables, i.e. the longest sequence the graph accepts. */
  maxPositions: number;
  /**
   * MatMulNBits `accuracy_level` (gpu flavour, q4): 4 lets kernels quantise activations to int8
   * (onnxruntime-genai's choice, fastest prefill on WebGPU), 0 computes in the input float type.
   */
  accuracyLevel: number;
}

export interface KvPair {
  key: string;
  value: string;
}

/** Llama source-weight names with their shapes. */
function source(name: string, shape: number[]): { name: string; shape: number[] } {
  return { name, shape };
}

export class LlamaGraphContext {
  readonly g = new GraphBuilder();
  readonly plan: WeightPlan;
  readonly io: DataTypeCode;
  readonly hd: number;
  readonly ffn: number;
  readonly quantized: boolean;
  private headQ4: Q4Initializers | undefined;
  private headFloat: string | undefined;
  private rope: { cos: string; sin: string } | undefined;

  constructor(
    readonly args: ModelArgs,
    readonly flavour: GraphFlavour,
    readonly dtype: ModelDtype,
    readonly options: GraphOptions,
  ) {
    this.io = ioDataType(dtype);
    this.plan = new WeightPlan(this.g, this.io);
    this.hd = headDim(args);
    this.ffn = ffnHiddenSize(args);
    this.quantized = isQuantized(dtype);
  }

  /** An io-typed scalar constant. */
  scalar(value: number): string {
    return this.g.floatConstant(this.io, [value], float16Bits);
  }

  /** A float32 scalar constant. */
  scalar32(value: number): string {
    return this.g.floatConstant(DataType.FLOAT, [value], float16Bits);
  }

  // ----- graph interface ------------------------------------------------------------------------

  /** input_ids, attention_mask, [position_ids,] past_key_values.{i}.key/value, num_logits_to_keep. */
  declareInputs(withPositionIds: boolean): {
    inputIds: string;
    attentionMask: string;
    positionIds: string | undefined;
    past: KvPair[];
    numLogitsToKeep: string;
  } {
    const { g, args } = this;
    const inputIds = g.input("input_ids", DataType.INT64, ["batch_size", "sequence_length"]);
    const attentionMask = g.input("attention_mask", DataType.INT64, ["batch_size", "total_sequence_length"]);
    const positionIds = withPositionIds ? g.input("position_ids", DataType.INT64, ["batch_size", "sequence_length"]) : undefined;
    const pastDims: Dim[] = ["batch_size", args.n_kv_heads, "past_sequence_length", this.hd];
    const past: KvPair[] = [];
    for (let i = 0; i < args.n_layers; i++) {
      past.push({
        key: g.input(`past_key_values.${i}.key`, this.io, pastDims),
        value: g.input(`past_key_values.${i}.value`, this.io, pastDims),
      });
    }
    const numLogitsToKeep = g.input("num_logits_to_keep", DataType.INT64, []);
    return { inputIds, attentionMask, positionIds, past, numLogitsToKeep };
  }

  /** Output names for layer i's present key/value (assigned by the attention nodes). */
  presentNames(i: number): KvPair {
    return { key: `present.${i}.key`, value: `present.${i}.value` };
  }

  declareOutputs(logits: string): void {
    const { g, args } = this;
    g.output(logits, this.io, ["batch_size", "logits_sequence_length", args.vocab_size]);
    const dims: Dim[] = ["batch_size", args.n_kv_heads, "total_sequence_length", this.hd];
    for (let i = 0; i < args.n_layers; i++) {
      const p = this.presentNames(i);
      g.output(p.key, this.io, dims);
      g.output(p.value, this.io, dims);
    }
  }

  // ----- weights --------------------------------------------------------------------------------

  /** cos/sin caches [maxPositions, hd/2] in io type, shared by all layers. */
  ropeCaches(): { cos: string; sin: string } {
    if (!this.rope) {
      const { args, options } = this;
      const [cos, sin] = this.plan.computed(["cos_cache", "sin_cache"], [options.maxPositions, this.hd / 2], () => {
        const c = ropeCosSin(args, options.maxPositions);
        return [c.cos, c.sin];
      });
      this.rope = { cos, sin };
    }
    return this.rope;
  }

  private headSource(): { name: string; shape: number[] } {
    return source(this.args.tie_word_embeddings ? EMBED_TOKENS : LM_HEAD, [this.args.vocab_size, this.args.dim]);
  }

  /**
   * y = x · Wᵀ for Hugging Face [out, in] weights (several are stacked along out, e.g. packed QKV).
   * float: MatMul with a [K, N] initializer. q4, gpu: MatMulNBits. q4, standard: an INT4
   * DequantizeLinear (block 32 along K) feeding MatMul, which onnxruntime fuses into MatMulNBits.
   */
  linear(x: string, prefix: string, sources: { name: string; shape: number[] }[], output?: string): string {
    const { g } = this;
    const outputs = output === undefined ? undefined : [output];
    if (!this.quantized) return g.node("MatMul", [x, this.plan.matmulWeight(`${prefix}.MatMul.weight`, sources)], { outputs })[0];
    const k = sources[0].shape[1];
    const n = sources.reduce((s, w) => s + w.shape[0], 0);
    if (this.flavour === "gpu") return this.matMulNBits(x, this.plan.q4Blocks(prefix, sources), k, n, output);
    const w = this.plan.int4MatmulWeight(prefix, sources);
    const dequantized = g.op("DequantizeLinear", [w.data, w.scales], { axis: 0, block_size: Q4_BLOCK_SIZE });
    return g.node("MatMul", [x, dequantized], { outputs })[0];
  }

  private matMulNBits(x: string, w: Q4Initializers, k: number, n: number, output?: string): string {
    return this.g.node("MatMulNBits", [x, w.data, w.scales], {
      attrs: { K: k, N: n, bits: 4, block_size: Q4_BLOCK_SIZE, accuracy_level: this.options.accuracyLevel },
      domain: MICROSOFT_DOMAIN,
      outputs: output === undefined ? undefined : [output],
    })[0];
  }

  /** The `logits` output from the final hidden state: lm_head (or the tied embedding) as a linear layer. */
  lmHead(x: string): string {
    const { args } = this;
    const output = "logits";
    if (!this.quantized) return this.g.node("MatMul", [x, this.headFloatWeight()], { outputs: [output] })[0];
    if (this.flavour === "gpu") return this.matMulNBits(x, this.headQ4Weight(), args.dim, args.vocab_size, output);
    return this.linear(x, "lm_head", [this.headSource()], output);
  }

  private headFloatWeight(): string {
    this.headFloat ??= this.plan.matmulWeight("lm_head.MatMul.weight", [this.headSource()]);
    return this.headFloat;
  }

  private headQ4Weight(): Q4Initializers {
    this.headQ4 ??= this.plan.q4Blocks("lm_head", [this.headSource()]);
    return this.headQ4;
  }

  /**
   * Token embeddings [B, S, H] for input_ids.
   * float, untied: Gather from the [V, H] table. float, tied: the lm_head's [H, V] MatMul weight
   * gathered along axis 1 and transposed, so the matrix is stored once and never copied.
   * q4, gpu: GatherBlockQuantized over 4-bit rows (the lm_head's own codes when tied).
   * q4, standard: Gather of packed rows and scales, unpacked with bitwise ops.
   */
  embed(inputIds: string): string {
    const { g, args } = this;
    const tied = args.tie_word_embeddings;
    const table = source(EMBED_TOKENS, [args.vocab_size, args.dim]);
    if (!this.quantized) {
      if (!tied) return g.op("Gather", [this.plan.rows("model.embed_tokens.weight", EMBED_TOKENS, [args.vocab_size, args.dim]), inputIds]);
      const columns = g.op("Gather", [this.headFloatWeight(), inputIds], { axis: 1 });
      return g.op("Transpose", [columns], { perm: [1, 2, 0] });
    }
    if (this.flavour === "gpu") {
      let rows: Q4Initializers;
      if (tied) {
        const head = this.headQ4Weight();
        rows = { data: g.op("Reshape", [head.data, g.int64([args.vocab_size, args.dim / 2])]), scales: head.scales };
      } else {
        rows = this.plan.q4Blocks("model.embed_tokens", [table], "rows");
      }
      return g.op(
        "GatherBlockQuantized",
        [rows.data, inputIds, rows.scales],
        { bits: 4, block_size: Q4_BLOCK_SIZE, gather_axis: 0, quantize_axis: 1 },
        MICROSOFT_DOMAIN,
      );
    }
    return this.unpackQ4Rows(inputIds, this.plan.q4Blocks("model.embed_tokens", [table], "rows"));
  }

  /** Standard-op dequantisation of gathered 4-bit rows: (code - 8) · scale, low nibble first. */
  private unpackQ4Rows(inputIds: string, rows: Q4Initializers): string {
    const { g, args } = this;
    const blocks = args.dim / Q4_BLOCK_SIZE;
    const packed = g.op("Gather", [rows.data, inputIds]); // [B, S, H/2] uint8
    const low = g.op("BitwiseAnd", [packed, g.constant(DataType.UINT8, [], Uint8Array.of(0x0f), "u8")]);
    const high = g.op("BitShift", [packed, g.constant(DataType.UINT8, [], Uint8Array.of(4), "u8")], { direction: "RIGHT" });
    const axisLast = g.int64([-1]);
    const pairs = g.op(
      "Concat",
      [g.op("Unsqueeze", [low, axisLast]), g.op("Unsqueeze", [high, axisLast])],
      { axis: -1 },
    ); // [B, S, H/2, 2]
    const codes = g.op("Reshape", [pairs, g.int64([0, 0, blocks, Q4_BLOCK_SIZE])]);
    const centred = g.op("Sub", [g.op("Cast", [codes], { to: this.io }), this.scalar(8)]);
    const scales = g.op("Unsqueeze", [g.op("Gather", [rows.scales, inputIds]), axisLast]); // [B, S, blocks, 1]
    return g.op("Reshape", [g.op("Mul", [centred, scales]), g.int64([0, 0, args.dim])]);
  }

  /** SwiGLU feed-forward of layer i: down(silu(gate(x)) · up(x)). */
  mlp(x: string, names: { gate: string; up: string; down: string }, layer: number): string {
    const { g, args, ffn } = this;
    const prefix = `model.layers.${layer}.mlp`;
    const gate = this.linear(x, `${prefix}.gate_proj`, [source(names.gate, [ffn, args.dim])]);
    const up = this.linear(x, `${prefix}.up_proj`, [source(names.up, [ffn, args.dim])]);
    const silu = g.op("Mul", [gate, g.op("Sigmoid", [gate])]);
    return this.linear(g.op("Mul", [silu, up]), `${prefix}.down_proj`, [source(names.down, [args.dim, ffn])]);
  }

  /**
   * Keeps the last `num_logits_to_keep` positions of [B, S, H] (all of them for 0):
   * Slice(starts = -n, ends = INT64_MAX, axes = [1]).
   */
  keepLastPositions(hidden: string, numLogitsToKeep: string): string {
    const { g } = this;
    const start = g.op("Neg", [g.op("Unsqueeze", [numLogitsToKeep, g.int64([0])])]);
    return g.op("Slice", [hidden, start, g.int64([BigInt("9223372036854775807")]), g.int64([1])]);
  }

  /** A norm weight [H] as stored. */
  normWeight(name: string, source: string): string {
    return this.plan.vector(name, source, this.args.dim);
  }
}
