// Two tiny ONNX graphs the static-KV decoder needs because onnxruntime-node 1.30 cannot create or
// read a device buffer from JavaScript: a device tensor exists only as the output of a session
// run with `preferredOutputLocation: "gpu-buffer"`, and its `download()` is not implemented.
//
// * The state allocator outputs zero-filled device tensors shaped like the decoder's state (KV
//   caches at full capacity, one token id, seqlens_k). Their shapes come from inputs, so nothing
//   is constant-folded and every output is its own buffer.
// * The readback graph copies the decoder's device-side token and seqlens_k to the host: 8 bytes.
import { GraphBuilder } from "../../model/onnx/graph-builder.js";
import { DataType, encodeModel, type DataTypeCode } from "../../model/onnx/onnx-proto.js";

export interface DecoderStateShape {
  nLayers: number;
  kvHeads: number;
  headDim: number;
  /** Element type of the caches (FLOAT or FLOAT16). */
  kvType: DataTypeCode;
}

/** Input names of the state allocator. */
export const ALLOCATOR_INPUTS = { kvShape: "kv_shape", tokenShape: "token_shape", lengthShape: "length_shape" } as const;

function toBytes(g: GraphBuilder, name: string): Uint8Array {
  return encodeModel(g.toModel({ graphName: name, opsets: { "": 21 }, producerName: "llama-edge", producerVersion: "1", locate: () => [] }));
}

/**
 * Outputs `past_key_values.{i}.key/value` [1, kvH, capacity, hd], `input_ids` [1, 1] int32 and
 * `seqlens_k` [1] int32, all zeros, named as the decoder's inputs they will be bound to.
 */
export function stateAllocatorModel(s: DecoderStateShape): Uint8Array {
  const g = new GraphBuilder();
  const kvShape = g.input(ALLOCATOR_INPUTS.kvShape, DataType.INT64, [4]);
  const tokenShape = g.input(ALLOCATOR_INPUTS.tokenShape, DataType.INT64, [2]);
  const lengthShape = g.input(ALLOCATOR_INPUTS.lengthShape, DataType.INT64, [1]);
  const zeroKv = s.kvType === DataType.FLOAT16 ? g.constant(DataType.FLOAT16, [], Uint16Array.of(0), "zero_kv") : g.constant(DataType.FLOAT, [], Float32Array.of(0), "zero_kv");
  const zeroInt = g.constant(DataType.INT32, [], Int32Array.of(0), "zero_i32");
  const kvDims = [1, s.kvHeads, "capacity", s.headDim];
  for (let i = 0; i < s.nLayers; i++) {
    for (const part of ["key", "value"]) {
      const name = `past_key_values.${i}.${part}`;
      g.node("Expand", [zeroKv, kvShape], { outputs: [name] });
      g.output(name, s.kvType, kvDims);
    }
  }
  g.node("Expand", [zeroInt, tokenShape], { outputs: ["input_ids"] });
  g.output("input_ids", DataType.INT32, [1, 1]);
  g.node("Expand", [zeroInt, lengthShape], { outputs: ["seqlens_k"] });
  g.output("seqlens_k", DataType.INT32, [1]);
  return toBytes(g, "static_kv_state");
}

/** Copies `next_token` [1, 1] and `seqlens_k` [1] (int32, on the device) to host outputs `token` and `seqlens`. */
export function readbackModel(): Uint8Array {
  const g = new GraphBuilder();
  const zero = g.constant(DataType.INT32, [], Int32Array.of(0), "zero_i32");
  // An Add of zero, not Identity: the session runs with graph optimisations off, and a real kernel
  // guarantees a device-side copy that the host fetch then downloads.
  g.node("Add", [g.input("next_token", DataType.INT32, [1, 1]), zero], { outputs: ["token"] });
  g.node("Add", [g.input("seqlens_k", DataType.INT32, [1]), zero], { outputs: ["seqlens"] });
  g.output("token", DataType.INT32, [1, 1]);
  g.output("seqlens", DataType.INT32, [1]);
  return toBytes(g, "static_kv_readback");
}
