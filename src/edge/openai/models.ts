/** `GET /v1/models` and the check that a request names the served model. */
import type { EdgeConfig } from "../config.js";
import { ApiError } from "../errors.js";
import type { EdgeHandler } from "../services.js";

const CREATED = 1721606400; // 2024-07-23, the Llama 3.1 release

function modelObject(id: string) {
  return { id, object: "model", created: CREATED, owned_by: "llama-edge" };
}

/** Throws 404 unless `model` is the served model id or one of its aliases. */
export function checkModel(model: string, config: EdgeConfig, param = "model"): void {
  if (model === config.modelId || config.modelAliases.includes(model)) return;
  throw new ApiError(
    404,
    `The model '${model}' does not exist; this gateway serves '${config.modelId}'`,
    "invalid_request_error",
    "model_not_found",
    param,
  );
}

export const listModels: EdgeHandler = async (_request, { services }) => {
  const { modelId, modelAliases } = services.config;
  return Response.json({ object: "list", data: [modelId, ...modelAliases].map(modelObject) });
};

export const getModel: EdgeHandler = async (request, { services }) => {
  const id = decodeURIComponent(new URL(request.url).pathname.replace(/^\/v1\/models\//, ""));
  checkModel(id, services.config, "model");
  return Response.json(modelObject(id));
};
