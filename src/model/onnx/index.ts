// ONNX builder public API (Node): transformers.js-ready Llama model folders.
export { buildModelFolder, buildGraph, staticKvFileName, MAX_ROPE_POSITIONS, type BuildModelOptions, type BuildProgress, type BuiltModelFolder } from "./build.js";
export { GRAPH_FLAVOURS, MODEL_DTYPES, onnxFileName, ioDataType, isQuantized, type GraphFlavour, type ModelDtype } from "./graph-common.js";
export { defaultTokenizerDir } from "./model-folder.js";
export { STATIC_KV_CAPACITY_DIM, TOKEN_RING_SIZE, type GpuGraphInterface } from "./gpu-graph.js";
export { storedWeights } from "./stored-weights.js";
export { decodeModel, DataType } from "./onnx-proto.js";
export { Q4_BLOCK_SIZE, quantizeQ4, dequantizeQ4, int4Transposed, scalesTransposed, float16Bits, roundToFloat16, type Q4Matrix } from "./quantize.js";
