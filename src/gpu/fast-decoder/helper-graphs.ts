// Two tiny ONNX graphs the static-KV decoder needs because onnxruntime-node 1.30 cannot create or
// read a device buffer from JavaScript: a device tensor exists only as the output of a session
// run with `preferredOutputLocation: "gpu-buffer"`, and its `download()` is not implemented.
//
// * The state allocator outputs zero-filled device tensors shaped like the decoder's state (KV
//   caches at full capacity, one token id, two token rings). Their shapes come from inputs, so
//   nothing is constant-folded and every output is its own buffer.
// * The readback graph copies a token ring to the host: 4 bytes per token.
import { GraphBuilder } from "../../model/onnx/graph-builder.js";
import { DataType, encodeModel, type DataTypeCode } from "../../model/onnx/onnx-proto.js";

export interface DecoderStateShape {
  nLayers: number;
  kvHeads: number;
  headDim: number;
  /** Element type of the caches (FLOAT or FLOAT16). */
  kvType: DataTypeCode;
  /** Length of the token ring. */
  ringSize: number;
}

/** Input names of the state allocator. */
export const ALLOCATOR_INPUTS = { kvShape: "kv_shape", tokenShape: "token_shape", ringShape: "ring_shape" } as const;

/** Allocator outputs besides the caches: the token id and the two token rings the decoder alternates. */
export const STATE_TOKEN = "input_ids";
export const STATE_RINGS = ["token_ring_a", "token_ring_b"] as const;

function toBytes(g: GraphBuilder, name: string): Uint8Array {
  return encodeModel(g.toModel({ graphName: name, opsets: { "": 21 }, producerName: "llama-edge", producerVersion: "1", locate: () => [] }));
}

/**
 * Outputs `past_key_values.{i}.key/value` [1, kvH, capacity, hd], `input_ids` [1, 1] int32 and two
 * int32 token rings, all zeros.
 */
export function stateAllocatorModel(s: DecoderStateShape): Uint8Array {
  const g = new GraphBuilder();
  const kvShape = g.input(ALLOCATOR_INPUTS.kvShape, DataType.INT64, [4]);
  const tokenShape = g.input(ALLOCATOR_INPUTS.tokenShape, DataType.INT64, [2]);
  const ringShape = g.input(ALLOCATOR_INPUTS.ringShape, DataType.INT64, [1]);
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
  g.node("Expand", [zeroInt, tokenShape], { outputs: [STATE_TOKEN] });
  g.output(STATE_TOKEN, DataType.INT32, [1, 1]);
  for (const ring of STATE_RINGS) {
    g.node("Expand", [zeroInt, ringShape], { outputs: [ring] });
    g.output(ring, DataType.INT32, [s.ringSize]);
  }
  return toBytes(g, "static_kv_state");
}

/** Copies a token ring [ringSize] (int32, on the device) to the host output `tokens`. */
export function readbackModel(ringSize: number): Uint8Array {
  const g = new GraphBuilder();
  const zero = g.constant(DataType.INT32, [], Int32Array.of(0), "zero_i32");
  // An Add of zero, not Identity: the session runs with graph optimisations off, and a real kernel
  // guarantees a device-side copy that the host fetch then downloads.
  g.node("Add", [g.input("token_ring", DataType.INT32, [ringSize]), zero], { outputs: ["tokens"] });
  g.output("tokens", DataType.INT32, [ringSize]);
  return toBytes(g, "static_kv_readback");
}
