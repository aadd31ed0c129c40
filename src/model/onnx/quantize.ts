// Number formats of the stored weights: IEEE half precision, and 4-bit symmetric block
// quantisation (block 32 along the input dimension) in the two layouts onnxruntime reads.

import { float16BitsToFloat32, float32ToFloat16Bits } from "../safetensors.js";

// ---------------------------------------------------------------------------------------------
// float16 (the conversions themselves live with the safetensors codec)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of a number, rounded to nearest even. */
export function float16Bits(value: number): number {
  f32[0] = value;
  return float32ToFloat16Bits(u32[0]);
}

/** The value a number takes once stored as float16. */
export function roundToFloat16(value: number): number {
  return float16BitsToFloat32(float16Bits(value));
}

// ---------------------------------------------------------------------------------------------
// 4-bit block quantisation

/** Elements per quantisation block (along the input dimension K), as onnxruntime-genai uses. */
export const Q4_BLOCK_SIZE = 32;

/**
 * A [rows, cols] matrix quantised row by row in blocks of 32 columns (cols is the matmul's K, rows
 * its N, i.e. the Hugging Face [out, in] layout). `packed` is exactly MatMulNBits' `B` input and
 * GatherBlockQuantized's `data`: [rows, cols/32, 16] bytes, unsigned codes 0..15 (value = code - 8),
 * low nibble first. `scales` is [rows, cols/32].
 */
export interface Q4Matrix {
  rows: number;
  cols: number;
  packed: Uint8Array;
  scales: Float32Array;
}

/**
 * Symmetric quantisation: each block's scale is its largest-magnitude value divided by -8, so that
 * value maps exactly to code 0 (-8) and the whole [-8, 7] range is used (onnxruntime's MLAS
 * symmetric rule). `roundScale` models the stored scale precision (float16 for q4f16); codes are
 * computed against the rounded scale so that dequantisation reproduces them exactly.
 */
export function quantizeQ4(
  data: Float32Array,
  rows: number,
  cols: number,
  roundScale: (scale: number) => number = Math.fround,
): Q4Matrix {
  if (cols % Q4_BLOCK_SIZE !== 0) {
    throw new Error(`4-bit quantisation needs the input dimension to be a multiple of ${Q4_BLOCK_SIZE}, got ${cols}`);
  }
  if (data.length !== rows * cols) throw new Error(`quantizeQ4: ${data.length} values for a [${rows}, ${cols}] matrix`);
  const blocks = cols / Q4_BLOCK_SIZE;
  const packed = new Uint8Array((rows * cols) / 2);
  const scales = new Float32Array(rows * blocks);
  for (let b = 0; b < rows * blocks; b++) {
    const start = b * Q4_BLOCK_SIZE;
    const end = start + Q4_BLOCK_SIZE;
    let max = 0;
    let min = 0;
    for (let i = start; i < end; i++) {
      const v = data[i];
      if (v > max) max = v;
      else if (v < min) min = v;
    }
    const extreme = max >= -min ? max : min;
    const scale = roundScale(extreme / -8);
    scales[b] = scale;
    const inverse = scale === 0 ? 0 : 1 / scale;
    for (let i = start; i < end; i += 2) {
      // code = clamp(round(v / scale), -8, 7) + 8; v / scale lies in [-8, 8] up to rounding, so
      // the floor of (v / scale + 8.5) is a non-negative int and | 0 floors it.
      let lo = (data[i] * inverse + 8.5) | 0;
      let hi = (data[i + 1] * inverse + 8.5) | 0;
      lo = lo > 15 ? 15 : lo < 0 ? 0 : lo;
      hi = hi > 15 ? 15 : hi < 0 ? 0 : hi;
      packed[i >>> 1] = lo | (hi << 4);
    }
  }
  return { rows, cols, packed, scales };
}

/** The float matrix a Q4Matrix stands for: (code - 8) · scale. */
export function dequantizeQ4(q: Q4Matrix): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let i = 0; i < out.length; i += 2) {
    const scale = q.scales[Math.floor(i / Q4_BLOCK_SIZE)];
    const byte = q.packed[i >>> 1];
    out[i] = ((byte & 0x0f) - 8) * scale;
    out[i + 1] = ((byte >>> 4) - 8) * scale;
  }
  return out;
}

/**
 * The same codes as an ONNX INT4 tensor of shape [cols, rows] (K-major, the float MatMul
 * orientation) for `DequantizeLinear(axis=0, block_size=32)`: element (k, n) at flat index
 * k·rows + n, two's-complement nibbles, low nibble first.
 */
export function int4Transposed(q: Q4Matrix): Uint8Array {
  const { rows, cols, packed } = q;
  const out = new Uint8Array(Math.ceil((rows * cols) / 2));
  for (let n = 0; n < rows; n++) {
    for (let k = 0; k < cols; k++) {
      const source = n * cols + k;
      const byte = packed[source >>> 1];
      // Unsigned code c stands for c - 8, whose 4-bit two's complement is c ^ 8.
      const nibble = ((source & 1 ? byte >>> 4 : byte) & 0x0f) ^ 0x08;
      const target = k * rows + n;
      out[target >>> 1] |= target & 1 ? nibble << 4 : nibble;
    }
  }
  return out;
}

/** Scales [rows, blocks] transposed to [blocks, rows], DequantizeLinear's layout for axis 0. */
export function scalesTransposed(q: Q4Matrix): Float32Array {
  const blocks = q.cols / Q4_BLOCK_SIZE;
  const out = new Float32Array(q.scales.length);
  for (let n = 0; n < q.rows; n++) for (let b = 0; b < blocks; b++) out[b * q.rows + n] = q.scales[n * blocks + b];
  return out;
}
