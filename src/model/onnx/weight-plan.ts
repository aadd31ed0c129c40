// Which bytes each external initializer holds, and how to compute them from the Hugging Face
// weights. Graph code declares initializers through a WeightPlan; the build later reads each source
// tensor once, runs the recipes that use it, and streams the results into the .onnx_data file.
import type { Tensor, WeightSource } from "../tensor.js";
import { formatShape, sameShape } from "../tensor.js";
import type { GraphBuilder } from "./graph-builder.js";
import { DataType, type DataTypeCode } from "./onnx-proto.js";
import { encodeFloats } from "../safetensors.js";
import { Q4_BLOCK_SIZE, int4Transposed, quantizeQ4, roundToFloat16, scalesTransposed, type Q4Matrix } from "./quantize.js";

/** Floats produced per chunk when converting large matrices (bounds the extra memory per tensor). */
const CHUNK_ELEMENTS = 1 << 22;

export interface WeightRecipe {
  /** Hugging Face tensors (with their expected shapes) the outputs are computed from; empty for computed tensors. */
  sources: { name: string; shape: number[] }[];
  /** Initializer names, one per payload returned by `encode`. */
  outputs: string[];
  /** The bytes of each output, as consecutive chunks (generated lazily where large). */
  encode(tensors: Tensor[]): Iterable<Uint8Array>[];
}

/** The storage format of one weight matrix in a graph. */
export type MatrixFormat = "float" | "q4";

function bytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Float values as FLOAT or FLOAT16 bytes, converted chunk by chunk. */
function* floatChunks(values: Float32Array, dataType: DataTypeCode): Generator<Uint8Array> {
  if (dataType === DataType.FLOAT) {
    yield bytes(values);
    return;
  }
  for (let start = 0; start < values.length; start += CHUNK_ELEMENTS) {
    yield encodeFloats(values.subarray(start, start + CHUNK_ELEMENTS), "float16");
  }
}

/**
 * Hugging Face [out_i, in] matrices stacked along `out` and transposed to the float MatMul layout
 * [in, Σ out_i], produced in row blocks so the transposed copy never exists in full.
 */
function* transposedChunks(tensors: Tensor[], dataType: DataTypeCode): Generator<Uint8Array> {
  const inDim = tensors[0].shape[1];
  const outDim = tensors.reduce((n, t) => n + t.shape[0], 0);
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / outDim));
  const TILE = 32;
  for (let k0 = 0; k0 < inDim; k0 += rowsPerChunk) {
    const k1 = Math.min(inDim, k0 + rowsPerChunk);
    const block = new Float32Array((k1 - k0) * outDim);
    let column = 0;
    for (const t of tensors) {
      const source = t.data;
      const rows = t.shape[0];
      // Tiles of 32 source rows: each output row gets 32 contiguous writes, and the 32 source
      // cache lines being read stay in L1 across consecutive k.
      for (let r0 = 0; r0 < rows; r0 += TILE) {
        const r1 = Math.min(rows, r0 + TILE);
        for (let k = k0; k < k1; k++) {
          let out = (k - k0) * outDim + column + r0;
          for (let r = r0; r < r1; r++) block[out++] = source[r * inDim + k];
        }
      }
      column += rows;
    }
    yield* floatChunks(block, dataType);
  }
}

function stackRows(tensors: Tensor[]): Float32Array {
  if (tensors.length === 1) return tensors[0].data;
  const out = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
  let offset = 0;
  for (const t of tensors) {
    out.set(t.data, offset);
    offset += t.data.length;
  }
  return out;
}

function scaleBytes(scales: Float32Array, dataType: DataTypeCode): Uint8Array {
  return dataType === DataType.FLOAT16 ? encodeFloats(scales, "float16") : bytes(scales);
}

/** Stored precision of a scale: float16 scales are rounded before the codes are computed. */
export function scaleRounding(scaleType: DataTypeCode): (x: number) => number {
  return scaleType === DataType.FLOAT16 ? roundToFloat16 : Math.fround;
}

export interface Q4Initializers {
  /** [N, K/32, 16] uint8 codes (MatMulNBits B). */
  data: string;
  /** [N, K/32] scales. */
  scales: string;
}

/**
 * Collects the external initializers of one graph with their recipes. `floatType` is the stored
 * float type (FLOAT or FLOAT16): weights, norms, rope caches and q4 scales all use it.
 */
export class WeightPlan {
  readonly recipes: WeightRecipe[] = [];

  constructor(
    private readonly g: GraphBuilder,
    readonly floatType: DataTypeCode,
  ) {}

  private add(recipe: WeightRecipe): void {
    this.recipes.push(recipe);
  }

  /** A 1-D weight (norm gains) as stored. */
  vector(name: string, source: string, length: number): string {
    this.g.external(name, this.floatType, [length]);
    this.add({ sources: [{ name: source, shape: [length] }], outputs: [name], encode: ([t]) => [floatChunks(t.data, this.floatType)] });
    return name;
  }

  /** A matrix in its Hugging Face [rows, cols] layout (embedding tables for Gather). */
  rows(name: string, source: string, shape: [number, number]): string {
    this.g.external(name, this.floatType, shape);
    this.add({ sources: [{ name: source, shape }], outputs: [name], encode: ([t]) => [floatChunks(t.data, this.floatType)] });
    return name;
  }

  /** Float MatMul weight [K, N]: the [out_i, K] sources stacked along out and transposed. */
  matmulWeight(name: string, sources: { name: string; shape: number[] }[]): string {
    const k = sources[0].shape[1];
    const n = sources.reduce((s, x) => s + x.shape[0], 0);
    this.g.external(name, this.floatType, [k, n]);
    this.add({ sources, outputs: [name], encode: (tensors) => [transposedChunks(tensors, this.floatType)] });
    return name;
  }

  /**
   * 4-bit codes in MatMulNBits / GatherBlockQuantized layout: B [N, K/32, 16] uint8 ("blocks", as
   * MatMulNBits declares it) or the same bytes as [N, K/2] ("rows", as a gather table), and scales
   * [N, K/32]; N = Σ out_i of the stacked sources, K = their input dimension.
   */
  q4Blocks(prefix: string, sources: { name: string; shape: number[] }[], layout: "blocks" | "rows" = "blocks"): Q4Initializers {
    const k = sources[0].shape[1];
    const n = sources.reduce((s, x) => s + x.shape[0], 0);
    checkQ4(prefix, k);
    const blocks = k / Q4_BLOCK_SIZE;
    const dims = layout === "blocks" ? [n, blocks, Q4_BLOCK_SIZE / 2] : [n, k / 2];
    const data = this.g.external(`${prefix}.weight_Q4`, DataType.UINT8, dims);
    const scales = this.g.external(`${prefix}.weight_scales`, this.floatType, [n, blocks]);
    this.add({
      sources,
      outputs: [data, scales],
      encode: (tensors) => {
        const q = this.quantize(tensors, n, k);
        return [[q.packed], [scaleBytes(q.scales, this.floatType)]];
      },
    });
    return { data, scales };
  }

  /**
   * 4-bit codes as an ONNX INT4 tensor [K, N] with scales [K/32, N], the operands of a standard
   * `DequantizeLinear(axis=0, block_size=32)` feeding a float MatMul.
   */
  int4MatmulWeight(prefix: string, sources: { name: string; shape: number[] }[]): Q4Initializers {
    const k = sources[0].shape[1];
    const n = sources.reduce((s, x) => s + x.shape[0], 0);
    checkQ4(prefix, k);
    const data = this.g.external(`${prefix}.weight_int4`, DataType.INT4, [k, n]);
    const scales = this.g.external(`${prefix}.weight_scales`, this.floatType, [k / Q4_BLOCK_SIZE, n]);
    this.add({
      sources,
      outputs: [data, scales],
      encode: (tensors) => {
        const q = this.quantize(tensors, n, k);
        return [[int4Transposed(q)], [scaleBytes(scalesTransposed(q), this.floatType)]];
      },
    });
    return { data, scales };
  }

  /** Tensors computed without source weights (the rope caches), produced together. */
  computed(names: string[], dims: number[], produce: () => Float32Array[]): string[] {
    for (const name of names) this.g.external(name, this.floatType, dims);
    this.add({ sources: [], outputs: names, encode: () => produce().map((values) => floatChunks(values, this.floatType)) });
    return names;
  }

  private quantize(tensors: Tensor[], n: number, k: number): Q4Matrix {
    return quantizeQ4(stackRows(tensors), n, k, scaleRounding(this.floatType));
  }
}

function checkQ4(prefix: string, k: number): void {
  if (k % Q4_BLOCK_SIZE !== 0) {
    throw new Error(`${prefix}: 4-bit weights need an input dimension divisible by ${Q4_BLOCK_SIZE}, got ${k}`);
  }
}

/** Checks that the source has every tensor the recipes read, with the expected shapes. */
export function checkSources(ws: WeightSource, recipes: readonly WeightRecipe[]): void {
  const available = new Set(ws.names());
  for (const recipe of recipes) {
    for (const s of recipe.sources) {
      if (!available.has(s.name)) throw new Error(`the weights have no tensor ${JSON.stringify(s.name)}`);
      const shape = ws.shape(s.name);
      if (!sameShape(shape, s.shape)) {
        throw new Error(`weight ${JSON.stringify(s.name)} has shape ${formatShape(shape)}, the config needs ${formatShape(s.shape)}`);
      }
    }
  }
}
