// Tiny model folders built by the ONNX builder in the test run, shared by test files, plus greedy
// parity of built models with the reference forward pass (through scripts/ort-decoder.ts, which the
// model benchmark shares).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PRESETS, isPresetName } from "../../src/model/config.js";
import { buildModelFolder, type GraphFlavour, type ModelDtype } from "../../src/model/onnx/index.js";
import { inMemoryWeights, loadAll, randomWeights } from "../../src/model/weights.js";
import type { WeightSource } from "../../src/model/tensor.js";
import { OrtDecoder, argmax, relativeError } from "../../scripts/ort-decoder.js";

export { OrtDecoder, QDQ_FLOAT_ACCURACY, argmax, relativeError } from "../../scripts/ort-decoder.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const MODELS_DIR = join(REPO_ROOT, "build", "test-models");

export interface TinyModelOptions {
  preset?: string;
  seed?: number;
  flavour?: GraphFlavour;
  dtypes?: ModelDtype[];
  /** Also write the static-KV decoder graph per dtype (gpu flavour; src/gpu/fast-decoder). */
  staticKv?: boolean;
}

const weightCache = new Map<string, WeightSource>();
/** The random weights a tiny model folder is built from (generated once per process, held in memory). */
export function tinyWeights(preset = "tiny", seed = 1): WeightSource {
  if (!isPresetName(preset)) throw new Error(`unknown preset ${JSON.stringify(preset)}`);
  const key = `${preset}/${seed}`;
  let ws = weightCache.get(key);
  if (!ws) weightCache.set(key, (ws = inMemoryWeights(PRESETS[preset], loadAll(randomWeights(PRESETS[preset], seed)))));
  return ws;
}

let builderHash: string | undefined;
/** A digest of the builder's sources, so a changed builder never reuses a stale folder. */
function builderSourceHash(): string {
  if (builderHash) return builderHash;
  const hash = createHash("sha256");
  const files = [
    ...readdirSync(join(REPO_ROOT, "src/model/onnx")).map((f) => `src/model/onnx/${f}`),
    ...["config.ts", "weights.ts", "rng.ts", "reference.ts", "safetensors.ts"].map((f) => `src/model/${f}`),
  ].sort();
  for (const f of files) hash.update(f).update(readFileSync(join(REPO_ROOT, f)));
  builderHash = hash.digest("hex").slice(0, 10);
  return builderHash;
}

/**
 * Builds a tiny random-weight model folder once per options into build/test-models/<key>/ and
 * returns its path (later calls, also from other test files, reuse it). Defaults: preset "tiny",
 * seed 1, gpu flavour, fp32. q4 graphs use MatMulNBits accuracy_level 0 (float arithmetic), so
 * they agree with the reference on the dequantised weights; for standard-flavour q4, open sessions
 * with `QDQ_FLOAT_ACCURACY` too (onnxruntime's DequantizeLinear→MatMulNBits fusion otherwise
 * quantises activations to int8).
 */
export async function tinyModelDir(opts: TinyModelOptions = {}): Promise<string> {
  const preset = opts.preset ?? "tiny";
  const seed = opts.seed ?? 1;
  const flavour = opts.flavour ?? "gpu";
  const dtypes = opts.dtypes ?? ["fp32"];
  const staticKv = opts.staticKv ?? false;
  const key = `${preset}-s${seed}-${flavour}-${dtypes.join("+")}${staticKv ? "-static-kv" : ""}`;
  const dir = join(MODELS_DIR, `${key}-${builderSourceHash()}`);
  if (existsSync(dir)) return dir;
  pruneStale(key);
  // Build beside the target and rename: readers never see a half-written folder, and when two
  // test files race, the loser's rename fails on the non-empty target and its copy is dropped.
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  mkdirSync(tmp, { recursive: true });
  try {
    await buildModelFolder({ outDir: tmp, weights: tinyWeights(preset, seed), flavour, dtypes, accuracyLevel: 0, staticKv });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(dir)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Removes folders of `key` built by an older builder (and their abandoned temporary copies). */
function pruneStale(key: string): void {
  if (!existsSync(MODELS_DIR)) return;
  const current = `${key}-${builderSourceHash()}`;
  const stale = new RegExp(`^${key.replace(/[.+]/g, "\\$&")}-[0-9a-f]{10}(\\.tmp-.*)?$`);
  for (const entry of readdirSync(MODELS_DIR)) {
    if (stale.test(entry) && !entry.startsWith(current)) rmSync(join(MODELS_DIR, entry), { recursive: true, force: true });
  }
}

/** A fixed prompt: <|begin_of_text|> and a few ordinary token ids. */
export const TEST_PROMPT = [128000, 9906, 1917, 11, 358, 1097, 264, 1296];

export interface GreedyParity {
  /** Worst relative logits error over all steps. */
  worst: number;
  /** Steps whose ONNX argmax differs from the reference's. */
  mismatches: number[];
  /** The reference's greedy tokens. */
  tokens: number[];
}

/**
 * Greedy generation of `steps` tokens with the KV cache: at every step the built model and the
 * reference forward pass (on the weights as the dtype stores them) see the same input, the
 * reference's greedy token, and their logits are compared.
 */
export async function greedyParity(opts: { preset: string; flavour: GraphFlavour; dtype: ModelDtype; steps?: number; seed?: number }): Promise<GreedyParity> {
  const { ReferenceModel } = await import("../../src/model/reference.js");
  const { storedWeights } = await import("../../src/model/onnx/index.js");
  const steps = opts.steps ?? 32;
  const seed = opts.seed ?? 1;
  const dir = await tinyModelDir({ preset: opts.preset, seed, flavour: opts.flavour, dtypes: [opts.dtype] });
  const weights = tinyWeights(opts.preset, seed);
  const reference = new ReferenceModel(weights.args, storedWeights(weights, opts.dtype));
  const cache = reference.newCache(TEST_PROMPT.length + steps);
  const decoder = await OrtDecoder.open(dir, opts.dtype);
  const result: GreedyParity = { worst: 0, mismatches: [], tokens: [] };
  try {
    let input = TEST_PROMPT;
    let position = 0;
    for (let s = 0; s < steps; s++) {
      const want = reference.forward(input, position, cache);
      const got = await decoder.step(input);
      result.worst = Math.max(result.worst, relativeError(got.logits, want));
      const token = argmax(want);
      if (argmax(got.logits) !== token) result.mismatches.push(s);
      result.tokens.push(token);
      position += input.length;
      input = [token];
    }
  } finally {
    await decoder.release();
  }
  return result;
}
