// Node entry ("llama-edge/node"): the parts that read or write files. Kept out of the main entry so that
// Worker bundles never pull in node:fs.
export { DEFAULT_TOKENIZER_ASSET_PATH, loadDefaultTokenizer } from "./node/tokenizer-asset.js";
export { CheckpointError, openHfCheckpoint, writeHfCheckpoint } from "./model/checkpoint.js";
export * from "./model/onnx/index.js";
