/**
 * Error bodies of the protocol (`{"error":{"message","code","field"?}}`) and the translation of a zod
 * validation failure into one that names the offending field.
 */
import type { z } from "zod";
import type { ErrorBody } from "./schemas.js";

/** Error codes the worker uses in pre-stream errors and in `done.error`. */
export const ERROR_CODES = {
  invalidJson: "invalid_json",
  invalidRequest: "invalid_request",
  unsupportedMediaType: "unsupported_media_type",
  contextLengthExceeded: "context_length_exceeded",
  tokenOutOfVocabulary: "token_out_of_vocabulary",
  duplicateRequestId: "duplicate_request_id",
  unauthorized: "unauthorized",
  notFound: "not_found",
  bodyTooLarge: "body_too_large",
  queueFull: "queue_full",
  notReady: "not_ready",
  shuttingDown: "shutting_down",
  deadlineExceeded: "deadline_exceeded",
  clientCancelled: "cancelled",
  internal: "internal_error",
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

export function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { message, code } : { message, code, field } };
}

/** Dotted path as used in `error.field`: `sampling.top_p`, `prompt_token_ids.3`; "" for the root. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join(".");
}

/**
 * The first issue of a failed parse as an error body. Unknown keys are reported under their own name so the
 * message points at the typo rather than at the enclosing object.
 */
export function validationErrorBody(error: z.ZodError): ErrorBody {
  const issue = error.issues[0];
  if (!issue) return errorBody(ERROR_CODES.invalidRequest, "invalid request");
  let path = issue.path;
  if (issue.code === "unrecognized_keys" && issue.keys.length > 0) path = [...path, issue.keys[0]!];
  const field = fieldPath(path);
  const message = field === "" ? issue.message : `${field}: ${issue.message}`;
  return errorBody(ERROR_CODES.invalidRequest, message, field === "" ? undefined : field);
}
