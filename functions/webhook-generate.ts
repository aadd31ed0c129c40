/**
 * Use case 3, webhook-driven generation (docs/webhooks.md):
 *
 *   POST   /v1/jobs          a chat-completions or completions body + `webhook: {url, secret_id?}` (+ `metadata`);
 *                            `Idempotency-Key` makes a retried submit return the same job. 202 + status URL.
 *   GET    /v1/jobs/:id      status, timestamps, every attempt, the result once generated.
 *   DELETE /v1/jobs/:id      cancels a queued or running job (and its GPU request).
 *   POST   /v1/hooks/:name   a signed webhook from another system starts the hook's configured job
 *                            (authenticated by its signature, not by an API key).
 *
 * The machinery (queue, Durable Objects, deliveries) is `services.jobs`; without it (no bindings) the routes
 * answer 501 with an OpenAI error body, so clients get a clear answer instead of a 404.
 */
import { Router, type IRequest } from "itty-router";
import { readJsonBody } from "../src/edge/body.js";
import { ConfigError } from "../src/edge/config.js";
import { ApiError } from "../src/edge/errors.js";
import { cancelJob, readJob, submitJob, triggerHook, type Submitted } from "../src/edge/jobs/operations.js";
import { idempotencyKeyFrom } from "../src/edge/jobs/request.js";
import type { JobRuntime } from "../src/edge/jobs/runtime.js";
import type { EdgeHandler, RequestContext } from "../src/edge/services.js";
import { z } from "zod";

type Args = [context: RequestContext, jobs: JobRuntime];

/** Any JSON value: the job schemas validate it field by field afterwards. */
const anyJson = z.unknown();

function accepted(request: Request, submitted: Submitted): Response {
  const statusUrl = `${new URL(request.url).origin}/v1/jobs/${submitted.view.id}`;
  return Response.json(
    { id: submitted.view.id, object: "job", status: submitted.view.status, status_url: statusUrl, created_at: submitted.view.created_at },
    { status: 202, headers: { location: statusUrl, ...(submitted.created ? {} : { "idempotent-replayed": "true" }) } },
  );
}

const methodNotAllowed = (request: Request, allowed: string) =>
  new ApiError(405, `${request.method} is not allowed on ${new URL(request.url).pathname}; use ${allowed}`, "invalid_request_error", "method_not_allowed");

const router = Router<IRequest, Args>();

router
  .post("/v1/jobs", async (request, { services, principal }, jobs) => {
    const idempotencyKey = idempotencyKeyFrom(request);
    const json = await readJsonBody(request, services.config.maxBodyBytes, anyJson);
    return accepted(request, await submitJob(jobs, services, principal.keyHash, json, idempotencyKey));
  })
  .get("/v1/jobs/:id", async (request, { principal }, jobs) => Response.json(await readJob(jobs, principal.keyHash, request.params.id!)))
  .delete("/v1/jobs/:id", async (request, { services, principal }, jobs) =>
    Response.json(await cancelJob(jobs, services, principal.keyHash, request.params.id!)),
  )
  .post("/v1/hooks/:name", async (request, { services }, jobs) => accepted(request, await triggerHook(jobs, services, request.params.name!, request)))
  .all("/v1/jobs", (request) => {
    throw methodNotAllowed(request, "POST");
  })
  .all("/v1/jobs/:id", (request) => {
    throw methodNotAllowed(request, "GET or DELETE");
  })
  .all("/v1/hooks/:name", (request) => {
    throw methodNotAllowed(request, "POST");
  })
  .all("*", (request) => {
    throw new ApiError(404, `no route for ${request.method} ${new URL(request.url).pathname}`, "not_found_error", "not_found");
  });

export const handleWebhookGenerate: EdgeHandler = async (request, context) => {
  const jobs = context.services.jobs;
  if (jobs === undefined) {
    throw new ApiError(501, "webhook-driven generation is not enabled in this deployment", "invalid_request_error", "not_implemented");
  }
  try {
    return (await router.fetch(request as IRequest, context, jobs)) as Response;
  } catch (error) {
    if (error instanceof ConfigError) {
      // The operator's job settings are wrong: say which variable, to the log and to the caller.
      context.services.log({ event: "jobs_misconfigured", error: error.message });
      throw new ApiError(500, `webhook jobs are misconfigured: ${error.message}`, "server_error", "jobs_misconfigured");
    }
    throw error;
  }
};
