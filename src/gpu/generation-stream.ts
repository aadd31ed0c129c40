/**
 * What every engine shares when it runs a generation: the `start` event, token events with time to first
 * token, stop-token and length decisions, cancellation reasons, and the `done` event with usage, timings and
 * token metrics. Engines (generation.ts: transformers.js step by step; fast-generation.ts: the static-KV
 * decoder) only compute tokens and feed them to `accept`, so both streams have the same shape by construction.
 */
import type { DoneEvent, FinishReason, GenerateRequest, WorkerEvent } from "../protocol/index.js";
import { ERROR_CODES } from "../protocol/index.js";
import type { WorkerMetrics } from "./metrics.js";

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

/** Log-probabilities of an accepted token, for requests with `logprobs`. */
export interface TokenLogprobs {
  logprob: number;
  top?: { id: number; logprob: number }[];
}

export class GenerationStream {
  /** Tokens emitted (the stop token excluded). */
  readonly generated: number[] = [];
  private finish: FinishReason = "length";
  private stopTokenId: number | undefined;
  private error: { message: string; code: string } | undefined;
  private cachedTokens = 0;
  private startSent = false;
  private firstTokenAt: number | null = null;
  private lastTokenAt: number | null = null;
  private readonly queueMs: number;

  constructor(
    private readonly job: GenerationJob,
    private readonly metrics: WorkerMetrics,
  ) {
    this.queueMs = performance.now() - job.receivedAt;
    metrics.queueWait.observe(this.queueMs / 1000);
  }

  /** Completion tokens so far: the emitted ones and the stop token, if one ended the stream. */
  get acceptedTokens(): number {
    return this.generated.length + (this.stopTokenId === undefined ? 0 : 1);
  }

  /** The stop token that ended the stream, if any. */
  get stopToken(): number | undefined {
    return this.stopTokenId;
  }

  /** Sends `start`: the prompt is about to be computed, `cachedTokens` of it served from a cache. */
  start(cachedTokens: number): void {
    this.cachedTokens = cachedTokens;
    this.sendStart();
  }

  /**
   * Takes the next token the model chose: a stop token ends the stream (not emitted); any other token is
   * emitted, and ends the stream when it reaches max_new_tokens. Returns whether generation goes on.
   */
  accept(token: number, logprobs?: TokenLogprobs): boolean {
    if (this.job.stopTokenIds.has(token)) {
      this.finish = "stop";
      this.stopTokenId = token;
      return false;
    }
    this.generated.push(token);
    const now = performance.now();
    if (this.firstTokenAt === null) {
      this.firstTokenAt = now;
      this.metrics.ttft.observe((now - this.job.receivedAt) / 1000);
    }
    this.lastTokenAt = now;
    this.job.emit(
      logprobs
        ? { type: "token", id: token, logprob: logprobs.logprob, ...(logprobs.top ? { top_logprobs: logprobs.top } : {}) }
        : { type: "token", id: token },
    );
    if (this.generated.length >= this.job.maxNewTokens) {
      this.finish = "length";
      return false;
    }
    return true;
  }

  /** Whether the job was cancelled (client, deadline, shutdown); if so the stream ends as `cancelled`. */
  cancelled(): boolean {
    const { signal } = this.job;
    if (!signal.aborted) return false;
    const reason = signal.reason as StopReason | undefined;
    this.finish = "cancelled";
    if (reason?.code && reason.code !== ERROR_CODES.clientCancelled) this.error = { message: reason.message, code: reason.code };
    return true;
  }

  /** A model failure: the stream ends with finish_reason `error`. */
  fail(error: unknown): void {
    this.finish = "error";
    this.error = { message: (error as Error).message, code: ERROR_CODES.internal };
  }

  /** Emits `done` (and `start` first if a failure came before it), counts tokens, returns the event. */
  end(): DoneEvent {
    const { job, metrics } = this;
    const promptTokens = job.promptIds.length;
    const completionTokens = this.acceptedTokens;
    const first = this.firstTokenAt;
    const last = this.lastTokenAt;
    const done: DoneEvent = {
      type: "done",
      finish_reason: this.finish,
      ...(this.stopTokenId === undefined ? {} : { stop_token_id: this.stopTokenId }),
      ...(this.error ? { error: this.error } : {}),
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, cached_tokens: this.cachedTokens },
      timings: {
        queue_ms: round(this.queueMs),
        ttft_ms: first === null ? null : round(first - job.receivedAt),
        decode_tokens_per_s:
          this.generated.length >= 2 && last! > first! ? round(((this.generated.length - 1) * 1000) / (last! - first!)) : null,
        total_ms: round(performance.now() - job.receivedAt),
      },
    };
    // The stream has its documented shape even when the failure happened before `start`.
    if (!this.startSent) this.sendStart();
    job.emit(done);
    metrics.tokens.inc({ kind: "prompt" }, promptTokens);
    metrics.tokens.inc({ kind: "cached" }, this.cachedTokens);
    metrics.tokens.inc({ kind: "completion" }, completionTokens);
    return done;
  }

  private sendStart(): void {
    const { request, promptIds, seed } = this.job;
    this.job.emit({
      type: "start",
      request_id: request.request_id,
      session_id: request.session_id,
      prompt_tokens: promptIds.length,
      cached_tokens: this.cachedTokens,
      queue_ms: round(this.queueMs),
      seed,
    });
    this.startSent = true;
  }
}

/** Length of the longest common prefix of two token sequences (how much of a cache a prompt can reuse). */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Yields to the event loop so cancel requests and disconnects that arrived during a step are seen. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
