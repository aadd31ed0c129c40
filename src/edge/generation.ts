/**
 * Running one generation on the GPU pool: pick the worker (the session's worker if it has one, else the
 * least loaded), open the stream, and fail over to the next worker if the chosen one fails before its first
 * token (unreachable, rejects, stalls, ends the stream early). After the first token a failure can no longer
 * be hidden and is reported as an `error` event. Every exit path releases the worker and cancels upstream
 * work that is still running.
 */
import type { DoneEvent, SamplingRequest, StartEvent, TokenEvent, WorkerEvent } from "../protocol/index.js";
import type { EdgeConfig } from "./config.js";
import { ApiError } from "./errors.js";
import { cancelGeneration, GpuRequestError, openGeneration } from "./gpu-client.js";
import { describeFetchError, type Background, type GpuPool, type WorkerState } from "./pool.js";

/** Where sessions live: one record per session key (a Durable Object in the Worker). */
export interface SessionDirectory {
  /**
   * The worker the session is on if that worker is among `candidates` (ready workers, best first);
   * otherwise records and returns `candidates[0]`.
   */
  place(sessionKey: string, candidates: readonly string[]): Promise<string>;
  /** Records that the session now lives on `worker` (after a failover). */
  record(sessionKey: string, worker: string): Promise<void>;
}

export type WaitUntil = (promise: Promise<unknown>) => void;

export interface GenerationDeps {
  config: EdgeConfig;
  pool: GpuPool;
  sessions: SessionDirectory | null;
  waitUntil: WaitUntil;
}

export interface GenerationInput {
  requestId: string;
  promptTokenIds: readonly number[];
  sampling: Partial<SamplingRequest>;
  /** Opaque, already namespaced by API key; null for stateless requests. */
  sessionKey: string | null;
}

export type GenerationEvent =
  | { type: "start"; worker: string; start: StartEvent }
  /** The worker is alive but has not produced a token yet (queued or prefilling). */
  | { type: "waiting" }
  | { type: "token"; token: TokenEvent }
  | { type: "done"; done: DoneEvent }
  /** The generation failed after output began, or every worker failed; nothing follows. */
  | { type: "error"; message: string; code: string };

/** The pool's ready workers and the context limit requests must fit. */
export interface Route {
  ready: WorkerState[];
  maxContext: number;
}

/** `background` runs the pool's `/readyz` refreshes; by default at once, through `waitUntil`. */
export async function route(deps: GenerationDeps, background: Background = (task) => deps.waitUntil(task())): Promise<Route> {
  const ready = await deps.pool.ranked(background);
  return { ready, maxContext: deps.pool.maxContext(ready) };
}

class WorkerFailure extends Error {
  override name = "WorkerFailure";
}

interface Attempt {
  worker: string;
  abort: AbortController;
  events: AsyncGenerator<WorkerEvent>;
  release: () => void;
}

/**
 * A generation that has been accepted by a worker. Iterate {@link events} once; call {@link cancel} to stop
 * early (stop string found, client gone).
 */
export class Generation {
  private attempt: Attempt | null;
  /** cancel() was called. */
  private cancelled = false;
  /** The worker sent its done event. */
  private completed = false;

  private constructor(
    private readonly deps: GenerationDeps,
    private readonly input: GenerationInput,
    private readonly order: string[],
    private readonly sessionWorker: string | null,
    first: Attempt,
    private readonly failures: string[],
    private readonly signal: AbortSignal | undefined,
  ) {
    this.attempt = first;
  }

  /** Chooses the worker order and opens the first stream that a worker accepts; throws ApiError otherwise. */
  static async start(deps: GenerationDeps, routed: Route, input: GenerationInput, signal?: AbortSignal): Promise<Generation> {
    let order = routed.ready.map((s) => s.url);
    let sessionWorker: string | null = null;
    if (input.sessionKey !== null && deps.sessions !== null) {
      sessionWorker = await deps.sessions.place(input.sessionKey, order);
      order = [sessionWorker, ...order.filter((u) => u !== sessionWorker)];
    }
    order = order.slice(0, deps.config.maxAttempts);
    const failures: string[] = [];
    const first = await openFirstAvailable(deps, input, order, failures, signal);
    const generation = new Generation(deps, input, order, sessionWorker, first, failures, signal);
    await generation.recordPlacement(first.worker);
    return generation;
  }

  get worker(): string | null {
    return this.attempt?.worker ?? null;
  }

  private async recordPlacement(worker: string): Promise<void> {
    if (this.input.sessionKey !== null && this.deps.sessions !== null && worker !== this.sessionWorker) {
      await this.deps.sessions.record(this.input.sessionKey, worker);
    }
  }

  async *events(): AsyncGenerator<GenerationEvent> {
    let tokens = 0;
    try {
      while (this.attempt !== null) {
        const attempt = this.attempt;
        try {
          for (;;) {
            const next = await nextWithin(attempt, this.deps.config.timeouts.stallMs);
            if (next.done) throw new WorkerFailure("the GPU worker closed the stream without a done event");
            const event = next.value;
            if (event.type === "start") {
              yield { type: "start", worker: attempt.worker, start: event };
            } else if (event.type === "keepalive") {
              yield { type: "waiting" };
            } else if (event.type === "token") {
              tokens++;
              yield { type: "token", token: event };
            } else {
              if (event.finish_reason === "error" && tokens === 0) {
                throw new WorkerFailure(`the GPU worker failed: ${event.error?.message ?? "unknown error"}`);
              }
              this.completed = true;
              yield { type: "done", done: event };
              return;
            }
          }
        } catch (e) {
          if (this.cancelled || this.signal?.aborted) return; // cancelled by us or the client left
          const reason = e instanceof WorkerFailure ? e.message : `GPU stream failed: ${describeFetchError(e)}`;
          this.abandon(attempt, reason);
          if (tokens > 0) {
            yield { type: "error", message: `generation failed after output began: ${reason}`, code: "gpu_worker_failed" };
            return;
          }
          this.failures.push(reason);
          const remaining = this.order.slice(this.order.indexOf(attempt.worker) + 1);
          try {
            this.attempt = await openFirstAvailable(this.deps, this.input, remaining, this.failures, this.signal);
            await this.recordPlacement(this.attempt.worker);
          } catch (openError) {
            this.attempt = null;
            const message = openError instanceof ApiError ? openError.message : describeFetchError(openError);
            yield { type: "error", message, code: "gpu_worker_failed" };
            return;
          }
        }
      }
    } finally {
      // Leaving before the done event (consumer stopped, client gone): the worker must stop too.
      this.finishAttempt(!this.completed);
    }
  }

  /** Stops the generation: closes the stream and tells the worker, so it frees the slot at once. */
  cancel(): void {
    this.cancelled = true;
    this.finishAttempt(true);
  }

  private finishAttempt(cancelUpstream = false): void {
    const attempt = this.attempt;
    if (attempt === null) return;
    this.attempt = null;
    attempt.release();
    if (!attempt.abort.signal.aborted) attempt.abort.abort(new Error("generation closed"));
    if (cancelUpstream) {
      this.deps.waitUntil(cancelGeneration(attempt.worker, this.deps.config.workerSecret, this.input.requestId));
    }
  }

  /** A worker failed this request: take it out of rotation and make sure it is not still working on it. */
  private abandon(attempt: Attempt, reason: string): void {
    this.deps.pool.markDown(attempt.worker, reason);
    attempt.release();
    if (!attempt.abort.signal.aborted) attempt.abort.abort(new Error(reason));
    this.deps.waitUntil(cancelGeneration(attempt.worker, this.deps.config.workerSecret, this.input.requestId));
  }
}

/** Reads the next event, aborting the attempt when the worker stays silent for `stallMs`. */
async function nextWithin(attempt: Attempt, stallMs: number): Promise<IteratorResult<WorkerEvent>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const failure = new WorkerFailure(`the GPU worker sent nothing for ${stallMs} ms`);
      attempt.abort.abort(failure);
      reject(failure);
    }, stallMs);
  });
  try {
    return await Promise.race([attempt.events.next(), stalled]);
  } finally {
    clearTimeout(timer);
  }
}

async function openFirstAvailable(
  deps: GenerationDeps,
  input: GenerationInput,
  order: readonly string[],
  failures: string[],
  outerSignal?: AbortSignal,
): Promise<Attempt> {
  for (const worker of order) {
    const abort = new AbortController();
    outerSignal?.addEventListener("abort", () => abort.abort(outerSignal.reason), { once: true });
    const release = deps.pool.acquire(worker);
    // Only the wait for response headers is bounded here; the stream itself is watched by the stall timer.
    const connectTimer = setTimeout(
      () => abort.abort(new WorkerFailure(`no response within ${deps.config.timeouts.connectMs} ms`)),
      deps.config.timeouts.connectMs,
    );
    try {
      const opened = await openGeneration(
        worker,
        deps.config.workerSecret,
        {
          version: 1,
          request_id: input.requestId,
          session_id: input.sessionKey,
          prompt_token_ids: [...input.promptTokenIds],
          sampling: input.sampling,
          deadline_ms: deps.config.timeouts.deadlineMs,
        },
        abort.signal,
      );
      return { worker, abort, events: opened.events, release };
    } catch (e) {
      release();
      if (e instanceof GpuRequestError && !e.retryable) {
        // The request itself is wrong for this model (e.g. a token id out of its vocabulary): no failover.
        throw new ApiError(e.status === 413 ? 413 : 400, e.message, "invalid_request_error", e.code ?? "invalid_request", e.field);
      }
      const reason = abort.signal.reason instanceof WorkerFailure ? abort.signal.reason.message : describeFetchError(e);
      failures.push(reason);
      // A full queue is not a failure of the worker: it stays in rotation (and keeps its sessions).
      if (!(e instanceof GpuRequestError && e.code === "queue_full")) deps.pool.markDown(worker, reason);
      if (outerSignal?.aborted) break;
    } finally {
      clearTimeout(connectTimer);
    }
  }
  throw new ApiError(
    503,
    `no GPU worker could take the request (${failures.join("; ") || "none available"})`,
    "service_unavailable_error",
    "gpu_worker_unavailable",
    null,
    { "retry-after": "5" },
  );
}
