/**
 * OpenAI-style errors: `{"error":{"message","type","param","code"}}` with the HTTP status the official
 * clients map to their error classes (400 BadRequest, 401 Authentication, 404 NotFound, 413, 429 RateLimit,
 * ≥500 InternalServer). Every failure the gateway reports goes through {@link ApiError}, so the body shape is
 * decided in one place.
 */
import type { z } from "zod";

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "server_error"
  | "service_unavailable_error";

export interface OpenAiErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers, e.g. `retry-after`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toJSON(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = "invalid_request") =>
  new ApiError(400, message, "invalid_request_error", code, param);

/** Path of a zod issue written the way JSON/JS readers write it: `messages[1].content`. */
export function paramPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

/**
 * The first issue of a failed parse as a 400 that names the field. Unknown keys are reported under their own
 * name, so a typo (`max_token`) is pointed at rather than its parent object.
 */
export function validationError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  if (issue === undefined) return badRequest("invalid request body");
  let path: readonly PropertyKey[] = issue.path;
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) path = [...path, issue.keys[0]!];
  const param = paramPath(path);
  const message = param === "" ? `request body: ${issue.message}` : `${param}: ${issue.message}`;
  return badRequest(message, param === "" ? null : param, "invalid_request");
}

/** The JSON response for an error; anything that is not an ApiError is a 500 whose details stay in the log. */
export function errorResponse(error: unknown, extraHeaders: Record<string, string> = {}): Response {
  const apiError =
    error instanceof ApiError ? error : new ApiError(500, "internal error in the gateway", "server_error", "internal_error");
  return new Response(JSON.stringify(apiError.toJSON()), {
    status: apiError.status,
    headers: { "content-type": "application/json", ...apiError.headers, ...extraHeaders },
  });
}
