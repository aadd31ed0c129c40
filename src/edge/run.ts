/**
 * From a prompt (token ids) and OpenAI-style sampling fields to a running generation: the context-length
 * check against the pool's limit (a 400 that says by how much), the mapping of sampling fields onto protocol
 * v1, the session key, and the worker choice. Shared by every API shape.
 */
import type { SamplingRequest } from "../protocol/index.js";
import { sha256Hex } from "./auth.js";
import { ApiError, badRequest } from "./errors.js";
import { Generation, route, type Route } from "./generation.js";
import type { RequestContext } from "./services.js";

/** Llama 3.1 reference sampling defaults (llama-models `generate`, HF generation_config): 0.6 / 0.9. */
export const DEFAULT_TEMPERATURE = 0.6;
export const DEFAULT_TOP_P = 0.9;

export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stop_token_ids?: readonly number[] | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  repetition_penalty?: number | null;
}

export interface RunRequest {
  promptIds: readonly number[];
  /** null: everything the context leaves after the prompt. */
  maxTokens: number | null;
  /** Request field names used in error messages. */
  promptParam: string;
  maxTokensParam: string;
  sampling: SamplingFields;
  logprobs: boolean;
  topLogprobs: number;
  /** The client's session id (`x-session-id`), or null for a stateless request. */
  sessionId: string | null;
}

export interface StartedRun {
  generation: Generation;
  promptTokens: number;
  maxContext: number;
}

const SESSION_ID = /^[\x21-\x7e]{1,256}$/;

/** The client's session id from `x-session-id`, validated (printable ASCII, at most 256 characters). */
export function sessionIdFrom(request: Request): string | null {
  const value = request.headers.get("x-session-id");
  if (value === null || value === "") return null;
  if (!SESSION_ID.test(value)) {
    throw badRequest("x-session-id header: must be 1-256 printable ASCII characters without spaces", "x-session-id");
  }
  return value;
}

/**
 * The session as the GPU side sees it: a digest of the API key and the client's id, so two tenants using the
 * same session id never share a KV cache or a placement record.
 */
export async function sessionKeyFor(keyHash: string, sessionId: string): Promise<string> {
  return sha256Hex(`${keyHash}\n${sessionId}`);
}

/** The 400 for prompts that do not fit, saying by how many tokens. */
export function contextLengthError(
  promptTokens: number,
  maxTokens: number | null,
  maxContext: number,
  promptParam: string,
  maxTokensParam: string,
): ApiError | null {
  if (maxTokens === null) {
    if (promptTokens < maxContext) return null;
    return new ApiError(
      400,
      `This model's maximum context length is ${maxContext} tokens, but the prompt has ${promptTokens} tokens, ` +
        `which leaves no room for a completion. Reduce the prompt by at least ${promptTokens - maxContext + 1} tokens.`,
      "invalid_request_error",
      "context_length_exceeded",
      promptParam,
    );
  }
  const total = promptTokens + maxTokens;
  if (total <= maxContext) return null;
  const over = total - maxContext;
  return new ApiError(
    400,
    `This model's maximum context length is ${maxContext} tokens. However, you requested ${total} tokens ` +
      `(${promptTokens} in the prompt, ${maxTokens} for the completion), ${over} too many. ` +
      `Reduce the prompt or ${maxTokensParam} by ${over} tokens.`,
    "invalid_request_error",
    "context_length_exceeded",
    promptTokens >= maxContext ? promptParam : maxTokensParam,
  );
}

export function protocolSampling(
  fields: SamplingFields,
  maxNewTokens: number,
  logprobs: boolean,
  topLogprobs: number,
  modelStopIds: readonly number[],
): Partial<SamplingRequest> {
  return {
    max_new_tokens: maxNewTokens,
    temperature: fields.temperature ?? DEFAULT_TEMPERATURE,
    top_p: fields.top_p ?? DEFAULT_TOP_P,
    top_k: fields.top_k ?? 0,
    repetition_penalty: fields.repetition_penalty ?? 1,
    frequency_penalty: fields.frequency_penalty ?? 0,
    presence_penalty: fields.presence_penalty ?? 0,
    seed: fields.seed ?? null,
    // Extra stop ids add to the model's own stop tokens (vLLM semantics); protocol v1 replaces them.
    stop_token_ids:
      fields.stop_token_ids && fields.stop_token_ids.length > 0
        ? [...new Set([...modelStopIds, ...fields.stop_token_ids])]
        : null,
    logprobs,
    top_logprobs: logprobs ? topLogprobs : 0,
  };
}

export async function startRun(context: RequestContext, run: RunRequest, signal?: AbortSignal): Promise<StartedRun> {
  const { services } = context;
  // Refreshes of stale `/readyz` answers wait until the GPU request below has its answer (or has failed).
  const deferred: (() => Promise<unknown>)[] = [];
  try {
    return await startRouted(context, run, await route(services, (task) => deferred.push(task)), signal);
  } finally {
    for (const task of deferred) services.waitUntil(task());
  }
}

async function startRouted(context: RequestContext, run: RunRequest, routed: Route, signal?: AbortSignal): Promise<StartedRun> {
  const { services } = context;
  const promptTokens = run.promptIds.length;
  const tooLong = contextLengthError(promptTokens, run.maxTokens, routed.maxContext, run.promptParam, run.maxTokensParam);
  if (tooLong !== null) throw tooLong;
  const maxNewTokens = run.maxTokens ?? routed.maxContext - promptTokens;
  const tokenizer = services.tokenizer();
  for (const id of run.sampling.stop_token_ids ?? []) {
    if (id >= tokenizer.vocabSize) throw badRequest(`stop_token_ids: ${id} is not a token id (0..${tokenizer.vocabSize - 1})`, "stop_token_ids");
  }
  const sessionKey = run.sessionId === null ? null : await sessionKeyFor(context.principal.keyHash, run.sessionId);
  // No GPU work (and no session placement) before the rate limit has admitted the caller.
  await context.admission;
  const generation = await Generation.start(
    services,
    routed,
    {
      requestId: context.requestId,
      promptTokenIds: run.promptIds,
      sampling: protocolSampling(run.sampling, maxNewTokens, run.logprobs, run.topLogprobs, tokenizer.stopTokens),
      sessionKey,
    },
    signal,
  );
  return { generation, promptTokens, maxContext: routed.maxContext };
}
