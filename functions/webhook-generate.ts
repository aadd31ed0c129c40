/**
 * Use case 3, webhook-driven generation: `POST /v1/jobs` (submit), `GET`/`DELETE /v1/jobs/:id`, and signed
 * inbound triggers `POST /v1/hooks/:name`. This is the entry only: the job machinery (queue, durable job
 * state, signed deliveries, retries) arrives as `services.jobs` (issue 6). Without it the routes answer 501
 * with an OpenAI error body, so clients get a clear answer instead of a 404.
 */
import { ApiError } from "../src/edge/errors.js";
import type { EdgeHandler } from "../src/edge/services.js";

export const handleWebhookGenerate: EdgeHandler = async (request, context) => {
  const jobs = context.services.jobs;
  if (jobs) return jobs(request, context);
  throw new ApiError(501, "webhook-driven generation is not enabled in this deployment", "invalid_request_error", "not_implemented");
};
