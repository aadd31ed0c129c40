/**
 * Request bodies: read with a byte limit (checked on `content-length` and again while streaming, because a
 * chunked body has no length), parsed as JSON, and validated once with a zod schema whose failure names the
 * field. Untrusted input is never used before it has passed through here.
 */
import type { z } from "zod";
import { ApiError, badRequest, validationError } from "./errors.js";

export function bodyTooLarge(limit: number): ApiError {
  return new ApiError(413, `request body exceeds ${limit} bytes`, "invalid_request_error", "request_too_large");
}

/** The body as text, or a 413 once more than `limit` bytes have arrived. */
export async function readBodyText(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw bodyTooLarge(limit);
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let received = 0;
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.byteLength;
    if (received > limit) {
      await reader.cancel().catch(() => undefined);
      throw bodyTooLarge(limit);
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

/** Parses and validates a JSON body: 400 for bad JSON (with the parser's position) or a bad field. */
export async function readJsonBody<S extends z.ZodType>(request: Request, limit: number, schema: S): Promise<z.output<S>> {
  const text = await readBodyText(request, limit);
  if (text.trim() === "") throw badRequest("the request body is empty; send a JSON object", null, "invalid_json");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, "invalid_json");
  }
  return validate(schema, json);
}

export function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}
