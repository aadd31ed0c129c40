/**
 * The model core's tensor currency: a shape plus float32 data in row-major order. Weights of any
 * stored dtype (bf16, fp16, fp32) are widened to float32 when read.
 */
import type { ModelArgs } from "./config.js";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/**
 * Named model weights (Hugging Face names and layouts), handed out one tensor at a time so that a
 * consumer converting an 8B model never holds more than a tensor or two in memory.
 */
export interface WeightSource {
  readonly args: ModelArgs;
  /** Every weight the model needs, in a stable order (see `llamaWeightShapes`). */
  names(): string[];
  shape(name: string): number[];
  /** A fresh float32 copy; the caller may modify it. */
  read(name: string): Tensor;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
