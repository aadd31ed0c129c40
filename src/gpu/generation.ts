/**
 * One generation on the model: session-cache reuse, prefill of the uncached suffix, then one decode step per
 * token with our sampling, until a stop token, the length limit or cancellation. Emits protocol events.
 */
import type { DoneEvent, FinishReason, GenerateRequest, WorkerEvent } from "../protocol/index.js";
import { ERROR_CODES } from "../protocol/index.js";
import { Rng } from "../model/rng.js";
import { applyPenalties, logSoftmax, sampleToken, topLogprobs, type SamplingParams } from "../model/sampling.js";
import type { DecodeBatcher } from "./batcher.js";
import type { KvLru } from "./kv-lru.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import type { KvState, ModelRunner } from "./runner.js";

/** Why a running generation was asked to stop (the abort reason of its signal). */
export interface StopReason {
  code: typeof ERROR_CODES.clientCancelled | typeof ERROR_CODES.deadlineExceeded | typeof ERROR_CODES.shuttingDown;
  message: string;
}

export interface GenerationJob {
  request: GenerateRequest;
  promptIds: readonly number[];
  maxNewTokens: number;
  stopTokenIds: ReadonlySet<number>;
  seed: number;
  /** performance.now() at receipt of the HTTP request. */
  receivedAt: number;
  signal: AbortSignal;
  emit: (event: WorkerEvent) => void;
}

export interface GenerationDeps {
  runner: ModelRunner;
  /** Decode steps go through it, so generations running side by side can share a forward pass. */
  batcher: DecodeBatcher;
  sessions: KvLru<KvState>;
  metrics: WorkerMetrics;
  logger: Logger;
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Yields to the event loop so cancel requests and disconnects that arrived during a step are seen. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Takes the session's cache (if any) and makes it hold exactly the longest prefix of the prompt it can serve,
 * always leaving at least one prompt token to feed (its logits start generation). A cache that would need
 * cropping but cannot be cropped (GPU tensors) is dropped and the prompt computed afresh.
 */
async function acquireState(deps: GenerationDeps, sessionId: string | null, prompt: readonly number[]): Promise<KvState> {
  const cached = sessionId === null ? undefined : deps.sessions.take(sessionId);
  if (!cached) {
    if (sessionId !== null) deps.metrics.kvLookups.inc({ result: "miss" });
    return deps.runner.newState();
  }
  let reusable = Math.min(commonPrefixLength(cached.tokens, prompt), prompt.length - 1);
  if (reusable < cached.tokens.length && !deps.runner.canCrop(cached)) reusable = 0;
  if (reusable === 0) {
    cached.dispose();
    deps.metrics.kvLookups.inc({ result: "miss" });
    return deps.runner.newState();
  }
  if (reusable < cached.tokens.length) {
    await deps.runner.crop(cached, reusable);
    deps.metrics.kvLookups.inc({ result: "partial" });
  } else {
    deps.metrics.kvLookups.inc({ result: "hit" });
  }
  return cached;
}

function samplingParams(s: GenerateRequest["sampling"]): SamplingParams {
  return {
    temperature: s.temperature,
    topP: s.top_p,
    topK: s.top_k,
    repetitionPenalty: s.repetition_penalty,
    frequencyPenalty: s.frequency_penalty,
    presencePenalty: s.presence_penalty,
  };
}

/**
 * Runs the job to completion and returns its `done` event (also emitted). Never throws for model errors:
 * they end the stream with finish_reason "error".
 */
export async function runGeneration(deps: GenerationDeps, job: GenerationJob): Promise<DoneEvent> {
  const { runner, metrics } = deps;
  const { request, promptIds } = job;
  const sampling = request.sampling;
  const params = samplingParams(sampling);
  // Repetition penalty over prompt and output; frequency/presence over output only (OpenAI), as two passes
  // in vLLM's order.
  const repetitionOnly: SamplingParams = { ...params, frequencyPenalty: 0, presencePenalty: 0 };
  const openAiOnly: SamplingParams = { ...params, repetitionPenalty: 1 };
  const penalised = params.repetitionPenalty !== 1 || params.frequencyPenalty !== 0 || params.presencePenalty !== 0;
  const rng = new Rng(job.seed);

  const startedAt = performance.now();
  const queueMs = startedAt - job.receivedAt;
  metrics.queueWait.observe(queueMs / 1000);

  const generated: number[] = [];
  const history: number[] = [...promptIds];
  let firstTokenAt: number | null = null;
  let lastTokenAt: number | null = null;
  let finish: FinishReason = "length";
  let stopTokenId: number | undefined;
  let error: { message: string; code: string } | undefined;
  let state: KvState | null = null;
  let cachedTokens = 0;
  let startSent = false;

  try {
    state = await acquireState(deps, request.session_id, promptIds);
    cachedTokens = state.tokens.length;
    job.emit({
      type: "start",
      request_id: request.request_id,
      session_id: request.session_id,
      prompt_tokens: promptIds.length,
      cached_tokens: cachedTokens,
      queue_ms: round(queueMs),
      seed: job.seed,
    });
    startSent = true;

    const prefillStart = performance.now();
    let logits = await runner.forward(state, promptIds.slice(cachedTokens));
    metrics.prefill.observe((performance.now() - prefillStart) / 1000);
    metrics.modelTokens.inc({ phase: "prefill" }, promptIds.length - cachedTokens);

    deps.batcher.join();
    try {
      for (;;) {
        if (job.signal.aborted) {
          const reason = job.signal.reason as StopReason;
          finish = "cancelled";
          if (reason?.code && reason.code !== ERROR_CODES.clientCancelled) error = { message: reason.message, code: reason.code };
          break;
        }
        const stepStart = performance.now();
        const logprobs = sampling.logprobs ? logSoftmax(logits) : null;
        if (penalised) {
          applyPenalties(logits, history, repetitionOnly);
          applyPenalties(logits, generated, openAiOnly);
        }
        const token = sampleToken(logits, params, rng);
        if (job.stopTokenIds.has(token)) {
          finish = "stop";
          stopTokenId = token;
          break;
        }
        generated.push(token);
        history.push(token);
        const now = performance.now();
        if (firstTokenAt === null) {
          firstTokenAt = now;
          metrics.ttft.observe((now - job.receivedAt) / 1000);
        }
        lastTokenAt = now;
        job.emit(
          logprobs
            ? {
                type: "token",
                id: token,
                logprob: logprobs[token]!,
                ...(sampling.top_logprobs > 0 ? { top_logprobs: topLogprobs(logprobs, sampling.top_logprobs) } : {}),
              }
            : { type: "token", id: token },
        );
        if (generated.length >= job.maxNewTokens) {
          finish = "length";
          break;
        }
        await yieldToEventLoop();
        if (job.signal.aborted) continue; // reported at the top of the loop
        logits = await deps.batcher.decode(state, token);
        metrics.modelTokens.inc({ phase: "decode" });
        metrics.decodeStep.observe((performance.now() - stepStart) / 1000);
      }
    } finally {
      deps.batcher.leave();
    }
  } catch (e) {
    finish = "error";
    error = { message: (e as Error).message, code: ERROR_CODES.internal };
    deps.logger.error("generation_failed", { request_id: request.request_id, error: e });
    // A failed pass may leave the state half-updated: never keep it.
    state?.dispose();
    state = null;
  }

  if (state) {
    if (request.session_id !== null) deps.sessions.put(request.session_id, state);
    else state.dispose();
  }

  const end = performance.now();
  const completionTokens = generated.length + (stopTokenId === undefined ? 0 : 1);
  const done: DoneEvent = {
    type: "done",
    finish_reason: finish,
    ...(stopTokenId === undefined ? {} : { stop_token_id: stopTokenId }),
    ...(error ? { error } : {}),
    usage: { prompt_tokens: promptIds.length, completion_tokens: completionTokens, cached_tokens: cachedTokens },
    timings: {
      queue_ms: round(queueMs),
      ttft_ms: firstTokenAt === null ? null : round(firstTokenAt - job.receivedAt),
      decode_tokens_per_s:
        generated.length >= 2 && lastTokenAt! > firstTokenAt!
          ? round(((generated.length - 1) * 1000) / (lastTokenAt! - firstTokenAt!))
          : null,
      total_ms: round(end - job.receivedAt),
    },
  };
  if (!startSent) {
    // The failure happened before `start`: still send it so the stream has its documented shape.
    job.emit({
      type: "start",
      request_id: request.request_id,
      session_id: request.session_id,
      prompt_tokens: promptIds.length,
      cached_tokens: 0,
      queue_ms: round(queueMs),
      seed: job.seed,
    });
  }
  job.emit(done);
  metrics.tokens.inc({ kind: "prompt" }, promptIds.length);
  metrics.tokens.inc({ kind: "cached" }, cachedTokens);
  metrics.tokens.inc({ kind: "completion" }, completionTokens);
  return done;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
