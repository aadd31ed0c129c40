// Direct-session greedy decoder over the builder's static-KV graph (see static-kv-decoder.ts).
export { StaticKvDecoder, type DecodeResult, type DecoderStats, type FastDecoderDevice, type StaticKvDecoderOptions } from "./static-kv-decoder.js";
