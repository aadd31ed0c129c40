/**
 * The worker's request handling, independent of HTTP routing: validation against the loaded model,
 * admission through the fair queue, the NDJSON event stream of a generation, cancellation, deadlines,
 * keep-alives, status and graceful shutdown.
 */
import { randomInt } from "node:crypto";
import { DisallowedSpecialTokenError, type Tokenizer } from "../llama/tokenizer.js";
import {
  ERROR_CODES,
  encodeEventLine,
  generateRequestSchema,
  resolveMaxNewTokens,
  tokenizeRequestSchema,
  validationErrorBody,
  type GenerateRequest,
  type Readyz,
  type TokenizeResponse,
  type WorkerEvent,
} from "../protocol/index.js";
import type { BatchLayout } from "./batch-kv.js";
import { DecodeBatcher } from "./batcher.js";
import type { WorkerConfig } from "./config.js";
import type { FastEngine } from "./fast-generation.js";
import { runGeneration, type StopReason } from "./generation.js";
import { HttpError } from "./http-error.js";
import { KvLru } from "./kv-lru.js";
import type { Logger } from "./logger.js";
import { createWorkerMetrics, type WorkerMetrics } from "./metrics.js";
import type { ModelFolder } from "./model-folder.js";
import type { KvState, ModelRunner } from "./runner.js";
import { FairScheduler, type Lease } from "./scheduler.js";

export interface ServiceDeps {
  config: WorkerConfig;
  folder: ModelFolder;
  runner: ModelRunner;
  /** How the graph lays out batched decode steps; null: no batching. */
  batchLayout: BatchLayout | null;
  tokenizer: Tokenizer;
  logger: Logger;
  /** The static-KV decoder (fast-generation.ts); null when FAST_DECODER is off or unavailable. */
  fast: FastEngine | null;
}

interface ActiveRequest {
  stop: AbortController;
}

/** A validated request that has a place in the queue. */
interface Admitted {
  request: GenerateRequest;
  promptIds: number[];
  maxNewTokens: number;
  stopTokenIds: Set<number>;
  seed: number;
  lease: Promise<Lease>;
  /** Aborted by cancel, disconnect, deadline or shutdown, with a StopReason. */
  stop: AbortController;
  httpSignal: AbortSignal;
  receivedAt: number;
}

const stopReason = (code: StopReason["code"], message: string): StopReason => ({ code, message });

export class WorkerService {
  readonly metrics: WorkerMetrics;
  private readonly scheduler: FairScheduler;
  private readonly sessions: KvLru<KvState>;
  private readonly batcher: DecodeBatcher;
  private readonly active = new Map<string, ActiveRequest>();
  private shuttingDown = false;
  /** Moving average of how long a generation holds the model, for Retry-After. */
  private averageServiceMs = 1000;

  constructor(private readonly deps: ServiceDeps) {
    const { config, runner } = deps;
    this.scheduler = new FairScheduler(config.queueCapacity, config.maxRunning);
    this.sessions = new KvLru<KvState>(config.kvBudgetBytes, () => this.metrics.kvEvictions.inc());
    this.metrics = createWorkerMetrics({
      queueDepth: () => this.scheduler.queueDepth,
      running: () => this.scheduler.running,
      kvSessions: () => this.sessions.size,
      kvBytes: () => this.sessions.bytes,
      liveKvCaches: () => runner.liveKvStates,
    });
    this.batcher = new DecodeBatcher(runner, deps.batchLayout, config.maxRunning, (rows) => this.metrics.decodeBatchRows.observe(rows));
  }

  readyz(): Readyz {
    const { runner, config } = this.deps;
    const queueDepth = this.scheduler.queueDepth;
    const running = this.scheduler.running;
    return {
      ready: !this.shuttingDown && !this.scheduler.isFull,
      model: runner.info.model,
      device: runner.info.device,
      dtype: runner.info.dtype,
      max_context: runner.info.maxContext,
      queue_depth: queueDepth,
      queue_capacity: config.queueCapacity,
      running,
      kv_sessions: this.sessions.size,
      kv_bytes: this.sessions.bytes,
      load: Math.round(((running + queueDepth) / (config.maxRunning + config.queueCapacity)) * 10_000) / 10_000,
      fast_decoder: this.deps.fast?.status() ?? null,
    };
  }

  tokenize(body: unknown): TokenizeResponse {
    const parsed = tokenizeRequestSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, validationErrorBody(parsed.error));
    const ids = this.deps.tokenizer.encode(parsed.data.text, { bos: parsed.data.bos, eos: false, allowedSpecial: "all" });
    return { ids, count: ids.length };
  }

  cancel(requestId: string): boolean {
    const entry = this.active.get(requestId);
    if (!entry) return false;
    entry.stop.abort(stopReason(ERROR_CODES.clientCancelled, "cancelled by request"));
    return true;
  }

  /** Validates and admits a generate request; returns its NDJSON event stream. Throws HttpError before streaming. */
  generate(body: unknown, httpSignal: AbortSignal, receivedAt: number): ReadableStream<Uint8Array> {
    try {
      return this.admit(body, httpSignal, receivedAt);
    } catch (error) {
      if (error instanceof HttpError) {
        this.metrics.requests.inc({ outcome: error.body.error.code });
        this.deps.logger.info("request_rejected", {
          status: error.status,
          code: error.body.error.code,
          ...(error.body.error.field ? { field: error.body.error.field } : {}),
        });
      }
      throw error;
    }
  }

  private admit(body: unknown, httpSignal: AbortSignal, receivedAt: number): ReadableStream<Uint8Array> {
    if (this.shuttingDown) throw HttpError.of(503, ERROR_CODES.shuttingDown, "the worker is shutting down");
    const parsed = generateRequestSchema.safeParse(body);
    if (!parsed.success) throw new HttpError(400, validationErrorBody(parsed.error));
    const request = parsed.data;
    if (this.active.has(request.request_id)) {
      throw HttpError.of(400, ERROR_CODES.duplicateRequestId, `request_id: ${request.request_id} is already queued or running`, "request_id");
    }
    const promptIds = this.promptIds(request);
    const { vocabSize, maxContext } = this.deps.runner.info;
    this.checkVocabulary(promptIds, "prompt_token_ids", vocabSize);
    const stopIds = request.sampling.stop_token_ids ?? this.deps.folder.stopTokens;
    this.checkVocabulary(stopIds, "sampling.stop_token_ids", vocabSize);
    const limit = resolveMaxNewTokens(request.sampling.max_new_tokens, promptIds.length, maxContext);
    if (!limit.ok) throw HttpError.of(400, ERROR_CODES.contextLengthExceeded, limit.message, limit.field);

    const stop = new AbortController();
    const admitted = this.scheduler.enqueue(request.session_id ?? request.request_id, stop.signal);
    if (!admitted.ok) {
      if (admitted.reason === "closed") throw HttpError.of(503, ERROR_CODES.shuttingDown, "the worker is shutting down");
      const waitMs = (this.averageServiceMs * (this.scheduler.queueDepth + 1)) / this.deps.config.maxRunning;
      const retryAfter = Math.min(3600, Math.max(1, Math.ceil(waitMs / 1000)));
      throw HttpError.of(429, ERROR_CODES.queueFull, `the queue is full (${this.scheduler.capacity} waiting)`, undefined, {
        "retry-after": String(retryAfter),
      });
    }
    this.active.set(request.request_id, { stop });
    return this.eventStream({
      request,
      promptIds,
      maxNewTokens: limit.maxNewTokens,
      stopTokenIds: new Set(stopIds),
      seed: request.sampling.seed ?? randomInt(0, 2 ** 47),
      lease: admitted.lease,
      stop,
      httpSignal,
      receivedAt,
    });
  }

  private promptIds(request: GenerateRequest): number[] {
    if (request.prompt_token_ids) return request.prompt_token_ids;
    try {
      return this.deps.tokenizer.encode(request.prompt!, { bos: true, eos: false, allowedSpecial: "all" });
    } catch (error) {
      if (error instanceof DisallowedSpecialTokenError) throw HttpError.of(400, ERROR_CODES.invalidRequest, `prompt: ${error.message}`, "prompt");
      throw error;
    }
  }

  private checkVocabulary(ids: readonly number[], field: string, vocabSize: number): void {
    const bad = ids.findIndex((id) => id >= vocabSize);
    if (bad >= 0) {
      throw HttpError.of(
        400,
        ERROR_CODES.tokenOutOfVocabulary,
        `${field}.${bad}: token id ${ids[bad]} is outside the model's vocabulary (size ${vocabSize})`,
        `${field}.${bad}`,
      );
    }
  }

  /** Streams the events of an admitted request: waits for its slot, runs it, ends with `done`. */
  private eventStream(admitted: Admitted): ReadableStream<Uint8Array> {
    const { request, promptIds, maxNewTokens, stopTokenIds, seed, lease, stop, httpSignal, receivedAt } = admitted;
    const { config, logger } = this.deps;
    const onDisconnect = () => stop.abort(stopReason(ERROR_CODES.clientCancelled, "client disconnected"));
    httpSignal.addEventListener("abort", onDisconnect, { once: true });
    const deadline =
      request.deadline_ms === null
        ? undefined
        : setTimeout(
            () => stop.abort(stopReason(ERROR_CODES.deadlineExceeded, `deadline of ${request.deadline_ms} ms exceeded`)),
            Math.max(0, request.deadline_ms - (performance.now() - receivedAt)),
          );

    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    let lastWrite = performance.now();
    const emit = (event: WorkerEvent) => {
      if (!open) return;
      lastWrite = performance.now();
      try {
        controller.enqueue(encodeEventLine(event));
      } catch {
        open = false;
      }
    };
    const keepalive = setInterval(() => {
      if (performance.now() - lastWrite >= config.keepaliveMs * 0.9) emit({ type: "keepalive" });
    }, Math.max(25, Math.floor(config.keepaliveMs / 2)));

    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
      },
      cancel: () => {
        open = false;
        onDisconnect();
      },
    });

    const run = async () => {
      logger.info("request_queued", {
        request_id: request.request_id,
        session_id: request.session_id,
        prompt_tokens: promptIds.length,
        max_new_tokens: maxNewTokens,
        queue_depth: this.scheduler.queueDepth,
      });
      let held: Lease;
      let outcome: string;
      try {
        held = await lease;
      } catch (reason) {
        // Left the queue without running: cancelled, deadline, or shutdown.
        const r = reason as StopReason;
        const cancelledCode = r?.code ?? ERROR_CODES.clientCancelled;
        const elapsed = performance.now() - receivedAt;
        emit({
          type: "done",
          finish_reason: "cancelled",
          ...(cancelledCode === ERROR_CODES.clientCancelled ? {} : { error: { message: r.message, code: cancelledCode } }),
          usage: { prompt_tokens: promptIds.length, completion_tokens: 0, cached_tokens: 0 },
          timings: { queue_ms: round(elapsed), ttft_ms: null, decode_tokens_per_s: null, total_ms: round(elapsed) },
        });
        outcome = "cancelled";
        logger.info("request_done", { request_id: request.request_id, finish_reason: "cancelled", while: "queued", reason: cancelledCode });
        return outcome;
      }
      const serviceStart = performance.now();
      try {
        const { done, engine } = await runGeneration(
          {
            runner: this.deps.runner,
            batcher: this.batcher,
            sessions: this.sessions,
            prefixReuse: this.deps.config.prefixReuse,
            fast: this.deps.fast,
            metrics: this.metrics,
            logger,
          },
          { request, promptIds, maxNewTokens, stopTokenIds, seed, receivedAt, signal: stop.signal, emit },
        );
        outcome = done.finish_reason;
        logger.info("request_done", {
          request_id: request.request_id,
          session_id: request.session_id,
          engine,
          finish_reason: done.finish_reason,
          ...(done.error ? { error_code: done.error.code } : {}),
          ...done.usage,
          ...done.timings,
        });
      } finally {
        this.averageServiceMs = 0.8 * this.averageServiceMs + 0.2 * (performance.now() - serviceStart);
        held.release();
      }
      return outcome;
    };

    run()
      .catch((error) => {
        logger.error("request_failed", { request_id: request.request_id, error });
        return "error";
      })
      .then((outcome) => {
        this.metrics.requests.inc({ outcome });
        this.active.delete(request.request_id);
        clearInterval(keepalive);
        if (deadline) clearTimeout(deadline);
        httpSignal.removeEventListener("abort", onDisconnect);
        if (open) {
          open = false;
          try {
            controller.close();
          } catch {
            // already closed by the consumer
          }
        }
      });
    return stream;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops admitting requests, ends queued ones (`cancelled` / `shutting_down`), lets running generations
   * finish for up to `graceMs`, then cancels what is left. Frees the session caches.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.scheduler.close(stopReason(ERROR_CODES.shuttingDown, "the worker is shutting down"));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), graceMs)));
    if ((await Promise.race([this.scheduler.idle(), graceOver])) === "timeout") {
      for (const entry of this.active.values()) entry.stop.abort(stopReason(ERROR_CODES.shuttingDown, "the worker is shutting down"));
      await this.scheduler.idle();
    }
    clearTimeout(timer);
    this.sessions.clear();
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
