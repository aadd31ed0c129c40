/**
 * Use case 1, the HTTP endpoint: the OpenAI-compatible API (`/v1/chat/completions`, `/v1/completions`,
 * `/v1/tokenize`, `/v1/detokenize`, `/v1/models`) and the Workers-AI-compatible `POST /ai/run/<model>`.
 * A plain handler `(request, context) => Response` over Web types: the Worker mounts it behind the gateway
 * (auth, limits, CORS), and a Node server can mount it the same way.
 */
import { Router, type IRequest } from "itty-router";
import { ApiError } from "../src/edge/errors.js";
import { chatCompletions } from "../src/edge/openai/chat-completions.js";
import { completions } from "../src/edge/openai/completions.js";
import { getModel, listModels } from "../src/edge/openai/models.js";
import { detokenize, tokenize } from "../src/edge/openai/tokenize.js";
import type { EdgeHandler, RequestContext } from "../src/edge/services.js";
import { workersAiRun } from "../src/edge/workers-ai/run.js";

const router = Router<IRequest, [RequestContext]>();

router
  .get("/v1/models", listModels)
  .get("/v1/models/*", getModel)
  .post("/v1/chat/completions", chatCompletions)
  .post("/v1/completions", completions)
  .post("/v1/tokenize", tokenize)
  .post("/v1/detokenize", detokenize)
  .post("/ai/run/*", workersAiRun)
  .all("*", (request) => {
    const path = new URL(request.url).pathname;
    const known = ["/v1/chat/completions", "/v1/completions", "/v1/tokenize", "/v1/detokenize"].includes(path);
    throw known
      ? new ApiError(405, `${request.method} is not allowed on ${path}; use POST`, "invalid_request_error", "method_not_allowed")
      : new ApiError(404, `no route for ${request.method} ${path}`, "not_found_error", "not_found");
  });

export const handleHttpEndpoint: EdgeHandler = async (request, context) =>
  (await router.fetch(request as IRequest, context)) as Response;
