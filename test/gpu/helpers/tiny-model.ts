/**
 * The tiny model the worker tests serve (built in the test run by the shared `tinyModelDir` helper) and the
 * reference model (the model core's TS forward pass) over the same weights: the oracle for generated tokens.
 */
import { ReferenceModel } from "../../../src/model/reference.js";
import { tinyModelDir, tinyWeights } from "../../helpers/models.js";

export interface TinyModel {
  dir: string;
  reference: ReferenceModel;
}

export async function tinyWorkerModel(preset = "tiny", seed = 1, flavour: "gpu" | "standard" = "gpu"): Promise<TinyModel> {
  const dir = await tinyModelDir({ preset, seed, flavour, dtypes: ["fp32"] });
  const weights = tinyWeights(preset, seed);
  return { dir, reference: new ReferenceModel(weights.args, weights) };
}
