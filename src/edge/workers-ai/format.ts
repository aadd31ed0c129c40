/**
 * Workers AI REST envelope (`{result, success, errors, messages}`), so code written against
 * `api.cloudflare.com/…/ai/run/<model>` reads our answers and errors unchanged.
 */
import { ApiError } from "../errors.js";

export function workersAiResult(result: unknown): Response {
  return Response.json({ result, success: true, errors: [], messages: [] });
}

export function workersAiErrorResponse(error: unknown): Response {
  const api =
    error instanceof ApiError ? error : new ApiError(500, "internal error in the gateway", "server_error", "internal_error");
  return Response.json(
    { result: null, success: false, errors: [{ code: api.status, message: api.message }], messages: [] },
    { status: api.status, headers: api.headers },
  );
}
