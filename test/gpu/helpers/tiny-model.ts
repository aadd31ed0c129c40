/**
 * The tiny model the worker tests serve, built in the test run with the ONNX builder, plus the reference
 * model (the model core's TS forward pass) over the same weights, which is the oracle for generated tokens.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PRESETS, type PresetName } from "../../../src/model/config.js";
import { buildModelFolder } from "../../../src/model/onnx/index.js";
import { ReferenceModel } from "../../../src/model/reference.js";
import { randomWeights } from "../../../src/model/weights.js";
import { REPO_ROOT } from "./worker-process.js";

export interface TinyModel {
  dir: string;
  reference: ReferenceModel;
}

/** Builds (once; concurrent test files race safely via rename) and returns the folder. */
export async function tinyWorkerModel(preset: PresetName = "tiny", seed = 1, flavour: "gpu" | "standard" = "gpu"): Promise<TinyModel> {
  const weights = randomWeights(PRESETS[preset], seed);
  const dir = join(REPO_ROOT, "build", "test-models", `worker-${preset}-${flavour}-s${seed}-fp32`);
  if (!existsSync(join(dir, "config.json"))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    await buildModelFolder({ outDir: tmp, weights, flavour, dtypes: ["fp32"] });
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another file built it first
    }
  }
  return { dir, reference: new ReferenceModel(PRESETS[preset], weights) };
}
