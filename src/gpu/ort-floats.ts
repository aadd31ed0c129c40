import type * as ort from "onnxruntime-node";
import { float16ToFloat32Array } from "../model/safetensors.js";

/**
 * A float32 or float16 onnxruntime-node CPU tensor's values as float32 (float16 decoded through the lookup
 * table). A float32 tensor's own data is returned, not a copy: onnxruntime-node gives every run's outputs fresh
 * buffers, so callers may change the values in place (the sampler's penalties do).
 */
export function floatValues(t: ort.Tensor): Float32Array {
  if (t.type === "float32") return t.data as Float32Array;
  if (t.type === "float16") return float16ToFloat32Array(t.data as Uint16Array);
  throw new Error(`expected a float32 or float16 tensor, got ${t.type}`);
}
