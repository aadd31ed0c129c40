/** An error that becomes a JSON error response (`{"error":{message,code,field?}}`) before any streaming. */
import { errorBody, type ErrorBody } from "../protocol/index.js";

export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.error.message);
  }

  static of(status: number, code: string, message: string, field?: string, headers?: Record<string, string>): HttpError {
    return new HttpError(status, errorBody(code, message, field), headers);
  }
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}
