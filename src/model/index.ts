/**
 * Model core public API (pure TypeScript; runs in Node and workerd). Node-only file access lives in
 * `./checkpoint.js` and is imported from there directly.
 */
export * from "./config.js";
export * from "./tensor.js";
export * from "./rng.js";
export * from "./sampling.js";
export * from "./weights.js";
export * from "./reference.js";
export * from "./generation.js";
export * from "./safetensors.js";
