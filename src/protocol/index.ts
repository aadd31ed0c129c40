/** Edge ⇄ GPU-worker protocol v1: schemas, types, NDJSON framing and request signing. Pure. */
export * from "./schemas.js";
export * from "./errors.js";
export * from "./limits.js";
export * from "./ndjson.js";
export * from "./auth.js";
export * from "./client.js";
