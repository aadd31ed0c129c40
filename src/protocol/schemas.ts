/**
 * Protocol v1 between the edge gateway and a GPU worker: request bodies, the NDJSON event stream and the
 * status documents, as zod schemas. Both sides validate with these, so a field means the same thing on
 * either side of the wire. Pure: no runtime-specific code.
 *
 * Every default below is ours (documented in docs/protocol.md); none comes from transformers.js or a
 * model's generation_config.json.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 1;

/** Llama 3 vocabularies are ~128k; the worker checks ids against the loaded model's real vocab size. */
const tokenId = z.int().min(0).max(2 ** 31 - 1);

/**
 * Request ids appear in the cancel URL (`/v1/requests/:request_id/cancel`) and in logs, so they are kept to
 * URL-safe characters.
 */
export const requestIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:~-]+$/, "must contain only letters, digits and . _ : ~ -");

/** The documented defaults of protocol v1 (also the values `samplingSchema` fills in). */
export const SAMPLING_DEFAULTS = {
  /** Applied only when the prompt leaves room: see `resolveMaxNewTokens`. */
  max_new_tokens: 256,
  temperature: 1,
  top_p: 1,
  top_k: 0,
  repetition_penalty: 1,
  frequency_penalty: 0,
  presence_penalty: 0,
  seed: null,
  logprobs: false,
  top_logprobs: 0,
} as const;

export const samplingSchema = z
  .strictObject({
    /** Absent: min(256, context left after the prompt). Present: prompt + this must fit the context. */
    max_new_tokens: z.int().min(1).max(1_048_576).optional(),
    /** 0 selects greedy decoding (argmax); the other filters are then irrelevant. */
    temperature: z.number().min(0).max(2).default(SAMPLING_DEFAULTS.temperature),
    top_p: z.number().gt(0).max(1).default(SAMPLING_DEFAULTS.top_p),
    /** 0 disables the filter. */
    top_k: z.int().min(0).max(1_048_576).default(SAMPLING_DEFAULTS.top_k),
    /** 1 disables it (CTRL-style: positive logits divided, negative multiplied). */
    repetition_penalty: z.number().gt(0).max(2).default(SAMPLING_DEFAULTS.repetition_penalty),
    frequency_penalty: z.number().min(-2).max(2).default(SAMPLING_DEFAULTS.frequency_penalty),
    presence_penalty: z.number().min(-2).max(2).default(SAMPLING_DEFAULTS.presence_penalty),
    /** null: the worker draws a seed and reports it in the `start` event. */
    seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().default(SAMPLING_DEFAULTS.seed),
    /** Absent or null: the model's own stop tokens (config.json / generation_config.json eos ids). */
    stop_token_ids: z.array(tokenId).max(64).nullable().optional(),
    logprobs: z.boolean().default(SAMPLING_DEFAULTS.logprobs),
    top_logprobs: z.int().min(0).max(20).default(SAMPLING_DEFAULTS.top_logprobs),
  })
  .superRefine((s, ctx) => {
    if (s.top_logprobs > 0 && !s.logprobs) {
      ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "requires logprobs: true" });
    }
  });

export const generateRequestSchema = z
  .strictObject({
    version: z.literal(PROTOCOL_VERSION),
    request_id: requestIdSchema,
    /** Requests with the same session id share a KV cache across turns; null: no reuse. */
    session_id: z.string().min(1).max(256).nullable().default(null),
    /** Exactly one of prompt_token_ids and prompt. */
    prompt_token_ids: z.array(tokenId).min(1).optional(),
    /** Direct use only: tokenized by the worker's text core with BOS added (no chat format applied). */
    prompt: z.string().min(1).optional(),
    sampling: samplingSchema.prefault({}),
    /** Budget in milliseconds from the moment the worker receives the request; null: none. */
    deadline_ms: z.int().min(1).max(86_400_000).nullable().default(null),
  })
  .superRefine((r, ctx) => {
    const given = Number(r.prompt_token_ids !== undefined) + Number(r.prompt !== undefined);
    if (given !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [r.prompt !== undefined ? "prompt" : "prompt_token_ids"],
        message: "exactly one of prompt_token_ids and prompt is required",
      });
    }
  });

export const tokenizeRequestSchema = z.strictObject({
  text: z.string(),
  /** Prepend <|begin_of_text|>; default false (the edge adds it when it builds a prompt). */
  bos: z.boolean().default(false),
});

export const tokenizeResponseSchema = z.strictObject({
  ids: z.array(tokenId),
  count: z.int().min(0),
});

// ---------------------------------------------------------------------------------------------------------
// The NDJSON event stream of POST /v1/generate

export const startEventSchema = z.strictObject({
  type: z.literal("start"),
  request_id: z.string(),
  session_id: z.string().nullable(),
  prompt_tokens: z.int().min(0),
  /** Prompt tokens whose KV came from the session cache (not recomputed). */
  cached_tokens: z.int().min(0),
  queue_ms: z.number().min(0),
  /** The seed in use (the request's, or the one the worker drew), so a run can be reproduced. */
  seed: z.int().min(0),
});

export const topLogprobSchema = z.strictObject({ id: tokenId, logprob: z.number() });

export const tokenEventSchema = z.strictObject({
  type: z.literal("token"),
  id: tokenId,
  logprob: z.number().optional(),
  top_logprobs: z.array(topLogprobSchema).optional(),
});

export const keepaliveEventSchema = z.strictObject({ type: z.literal("keepalive") });

export const finishReasonSchema = z.enum(["stop", "length", "cancelled", "error"]);

export const usageSchema = z.strictObject({
  prompt_tokens: z.int().min(0),
  /** Generated tokens, counting the stop token (which is reported in `stop_token_id`, not as a token event). */
  completion_tokens: z.int().min(0),
  cached_tokens: z.int().min(0),
});

export const timingsSchema = z.strictObject({
  queue_ms: z.number().min(0),
  /** From receipt of the request to the first token event; null when no token was produced. */
  ttft_ms: z.number().min(0).nullable(),
  /** Tokens after the first one divided by the time since the first one; null with fewer than 2 tokens. */
  decode_tokens_per_s: z.number().min(0).nullable(),
  total_ms: z.number().min(0),
});

export const errorCodeSchema = z.string().min(1);

export const doneEventSchema = z.strictObject({
  type: z.literal("done"),
  finish_reason: finishReasonSchema,
  stop_token_id: tokenId.optional(),
  /** Present when finish_reason is "error", and on "cancelled" to say why (e.g. deadline_exceeded). */
  error: z.strictObject({ message: z.string(), code: errorCodeSchema }).optional(),
  usage: usageSchema,
  timings: timingsSchema,
});

export const workerEventSchema = z.discriminatedUnion("type", [
  startEventSchema,
  tokenEventSchema,
  keepaliveEventSchema,
  doneEventSchema,
]);

// ---------------------------------------------------------------------------------------------------------
// Status documents and errors

export const readyzSchema = z.strictObject({
  ready: z.boolean(),
  model: z.string(),
  device: z.string(),
  dtype: z.string(),
  max_context: z.int().min(1),
  queue_depth: z.int().min(0),
  queue_capacity: z.int().min(0),
  running: z.int().min(0),
  kv_sessions: z.int().min(0),
  kv_bytes: z.int().min(0),
  /** (running + queued) / (max running + queue_capacity): 0 idle, 1 full. What the edge routes by. */
  load: z.number().min(0),
  /**
   * The static-KV fast decoder that serves greedy requests (null: off or unavailable; absent from older
   * workers): its cache capacity, steps per token readback, whether a generation runs on it, and how many
   * tokens of the last sequence its cache holds.
   */
  fast_decoder: z
    .strictObject({
      capacity: z.int().min(1),
      readback_every: z.int().min(1),
      busy: z.boolean(),
      cached_tokens: z.int().min(0),
    })
    .nullable()
    .optional(),
});

export const errorBodySchema = z.strictObject({
  error: z.strictObject({
    message: z.string(),
    code: errorCodeSchema,
    /** Dotted path of the offending request field, e.g. "sampling.top_p" or "prompt_token_ids.3". */
    field: z.string().optional(),
  }),
});

export type GenerateRequestInput = z.input<typeof generateRequestSchema>;
export type GenerateRequest = z.output<typeof generateRequestSchema>;
export type SamplingRequest = z.output<typeof samplingSchema>;
export type TokenizeRequest = z.output<typeof tokenizeRequestSchema>;
export type TokenizeResponse = z.output<typeof tokenizeResponseSchema>;
export type StartEvent = z.output<typeof startEventSchema>;
export type TokenEvent = z.output<typeof tokenEventSchema>;
export type KeepaliveEvent = z.output<typeof keepaliveEventSchema>;
export type DoneEvent = z.output<typeof doneEventSchema>;
export type FinishReason = z.output<typeof finishReasonSchema>;
export type WorkerEvent = z.output<typeof workerEventSchema>;
export type Readyz = z.output<typeof readyzSchema>;
export type ErrorBody = z.output<typeof errorBodySchema>;
