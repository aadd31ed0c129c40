// Direct-session greedy decoder over the builder's static-KV graph (see static-kv-decoder.ts).
export { StaticKvDecoder, type DecodeResult, type DecoderStats, type FastDecoderDevice, type RunOptions, type StaticKvDecoderOptions, type StepOptions } from "./static-kv-decoder.js";
