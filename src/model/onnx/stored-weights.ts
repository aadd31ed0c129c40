// The weights exactly as a built model stores them, as a WeightSource: running the reference
// forward pass on this view isolates the graph's arithmetic from the storage format's rounding,
// so built q4/fp16 models can be checked against the reference with tight tolerances.
import type { Tensor, WeightSource } from "../tensor.js";
import { isQuantized, ioDataType, type ModelDtype } from "./graph-common.js";
import { DataType } from "./onnx-proto.js";
import { encodeFloats, float16Table } from "../safetensors.js";
import { dequantizeQ4, quantizeQ4 } from "./quantize.js";
import { scaleRounding } from "./weight-plan.js";

/**
 * q4/q4f16: every matrix (embedding, projections, head) quantised and dequantised, with scales in
 * the stored precision. fp16/q4f16: float-stored tensors (norm gains, fp16 matrices) rounded to
 * float16. Dequantised q4f16 values are left in float32: kernels multiply code and scale in
 * float32 or float16 depending on the EP.
 */
export function storedWeights(ws: WeightSource, dtype: ModelDtype): WeightSource {
  const floatType = ioDataType(dtype);
  const roundScale = scaleRounding(floatType);
  const read = (name: string): Tensor => {
    const t = ws.read(name);
    if (isQuantized(dtype) && t.shape.length === 2) {
      const [rows, cols] = t.shape;
      return { shape: t.shape, data: dequantizeQ4(quantizeQ4(t.data, rows, cols, roundScale)) };
    }
    if (floatType === DataType.FLOAT16) {
      const halves = new Uint16Array(encodeFloats(t.data, "float16").buffer);
      const value = float16Table();
      for (let i = 0; i < halves.length; i++) t.data[i] = value[halves[i]];
    }
    return t;
  };
  return { args: ws.args, names: () => ws.names(), shape: (name) => ws.shape(name), read };
}
