/**
 * `POST /v1/jobs` bodies: a chat-completions body (with `messages`) or a completions body (with `prompt`),
 * plus `webhook: {url, secret_id?}` and optional `metadata`. The generation part is validated by the same
 * schemas as the synchronous endpoints, so a job that is accepted is one those endpoints would accept; the
 * webhook part by the callback-URL policy. Also: job ids, and the request digest that makes a repeated
 * Idempotency-Key safe.
 */
import { z } from "zod";
import { sha256Hex } from "../auth.js";
import { validate } from "../body.js";
import { chatCompletionRequestSchema } from "../chat/schema.js";
import type { EdgeConfig } from "../config.js";
import { badRequest } from "../errors.js";
import { completionRequestSchema } from "../openai/completions.js";
import { checkModel } from "../openai/models.js";
import type { JobKind } from "./job.js";

export const JOB_ID = /^job_[0-9a-f]{32}$/;

const webhookSchema = z.strictObject({
  url: z.string().min(1).max(2048),
  secret_id: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, _ . -")
    .optional(),
});

/** OpenAI's metadata limits: at most 16 pairs, keys up to 64 characters, values up to 512. */
const metadataSchema = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, "at most 16 key-value pairs");

const envelopeSchema = z.looseObject({ webhook: webhookSchema, metadata: metadataSchema.nullish() });

export interface JobRequest {
  kind: JobKind;
  /** The generation request alone (no webhook, no metadata), as JSON text. */
  body: string;
  webhook: { url: string; secretId: string };
  metadata: Record<string, string> | null;
}

/** Validates a parsed `POST /v1/jobs` body; 400s name the field. */
export function parseJobRequest(json: unknown, config: EdgeConfig): JobRequest {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw badRequest("the request body must be a JSON object");
  const envelope = validate(envelopeSchema, json);
  const { webhook: _webhook, metadata: _metadata, ...generation } = json as Record<string, unknown>;
  const hasMessages = "messages" in generation;
  const hasPrompt = "prompt" in generation;
  if (hasMessages === hasPrompt) {
    throw badRequest(
      hasMessages
        ? "send either messages (a chat completion) or prompt (a completion), not both"
        : "messages (a chat completion) or prompt (a completion) is required",
      hasMessages ? "prompt" : "messages",
    );
  }
  if (generation.stream === true) throw badRequest("stream: a job delivers one result to its webhook; leave stream out or false", "stream");
  const kind: JobKind = hasMessages ? "chat.completion" : "text_completion";
  const parsed = hasMessages ? validate(chatCompletionRequestSchema, generation) : validate(completionRequestSchema, generation);
  checkModel(parsed.model, config);
  return {
    kind,
    body: JSON.stringify(generation),
    webhook: { url: envelope.webhook.url, secretId: envelope.webhook.secret_id ?? "default" },
    metadata: envelope.metadata ?? null,
  };
}

/** JSON with object keys sorted at every level, so key order and whitespace do not change a digest. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The `Idempotency-Key` header, validated; null when absent. */
export function idempotencyKeyFrom(request: Request): string | null {
  const key = request.headers.get("idempotency-key");
  if (key === null) return null;
  if (!IDEMPOTENCY_KEY.test(key)) throw badRequest("Idempotency-Key header: must be 1-255 printable ASCII characters without spaces", "idempotency-key");
  return key;
}

/**
 * The job id: derived from the owner and the idempotency key when there is one (so the same key always
 * finds the same job object), random otherwise.
 */
export async function jobIdFor(owner: string, idempotencyKey: string | null): Promise<string> {
  if (idempotencyKey !== null) return `job_${(await sha256Hex(`${owner}\n${idempotencyKey}`)).slice(0, 32)}`;
  return `job_${crypto.randomUUID().replaceAll("-", "")}`;
}
