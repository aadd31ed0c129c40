/**
 * The GPU pool as this isolate sees it: each configured worker's last `/readyz` answer, whether it recently
 * failed, and how many requests this isolate has open on it. Routing ranks ready workers by the load the
 * worker reports plus this isolate's own open requests (which the worker's figure does not show yet), so a
 * burst of requests arriving within one `/readyz` TTL still spreads.
 *
 * The state is plain data in a module-level map: it survives across requests of one isolate, and probes never
 * share I/O objects between requests (which Workers forbids). A stale answer is used while a background
 * refresh runs, so a healthy pool costs no probe on the request path.
 */
import { readyzSchema, signWorkerRequest, type Readyz } from "../protocol/index.js";
import type { EdgeConfig } from "./config.js";
import { ApiError } from "./errors.js";

export interface WorkerState {
  url: string;
  readyz: Readyz | null;
  /** Date.now() of the last probe (successful or not); 0 before the first. */
  checkedAt: number;
  /** Out of rotation until this time (ms since epoch) after a failure; 0 when healthy. */
  downUntil: number;
  lastError: string | null;
  /** Requests this isolate currently has open on the worker. */
  inflight: number;
  /** A background probe is running (at most one per worker and isolate). */
  refreshing: boolean;
}

/** Shared by every request of the isolate; keyed by worker URL. */
const ISOLATE_STATE = new Map<string, WorkerState>();

/** Within this many TTLs a ready answer is served stale while a refresh runs in the background. */
const STALE_FACTOR = 10;

/**
 * Runs a background task (a `/readyz` refresh) after the caller's critical path: the request path hands in
 * one that holds tasks until its own GPU request has been sent and answered, because a probe started at the
 * same moment competes with it for the connection and the worker's event loop (measured: about 10 ms added
 * to the first token under wrangler dev, docs/benchmarks.md).
 */
export type Background = (task: () => Promise<unknown>) => void;

export class GpuPool {
  constructor(
    private readonly config: EdgeConfig,
    private readonly states: Map<string, WorkerState> = ISOLATE_STATE,
  ) {}

  private state(url: string): WorkerState {
    let s = this.states.get(url);
    if (s === undefined) {
      s = { url, readyz: null, checkedAt: 0, downUntil: 0, lastError: null, inflight: 0, refreshing: false };
      this.states.set(url, s);
    }
    return s;
  }

  /** Probes one worker's `/readyz` and records the answer (never throws). */
  async probe(url: string): Promise<WorkerState> {
    const s = this.state(url);
    try {
      const headers = this.config.workerSecret
        ? await signWorkerRequest(this.config.workerSecret, { method: "GET", path: "/readyz", body: "" })
        : {};
      const response = await fetch(`${url}/readyz`, {
        headers,
        signal: AbortSignal.timeout(this.config.timeouts.readyzMs),
      });
      const json: unknown = await response.json().catch(() => null);
      const parsed = readyzSchema.safeParse(json);
      if (!parsed.success) throw new Error(`/readyz answered ${response.status} without a valid status document`);
      s.readyz = parsed.data;
      s.lastError = parsed.data.ready ? null : "worker reports ready: false (loading, shutting down or queue full)";
      s.downUntil = 0;
    } catch (e) {
      s.readyz = null;
      s.lastError = describeFetchError(e);
      s.downUntil = Date.now() + this.config.timeouts.downMs;
    }
    s.checkedAt = Date.now();
    return s;
  }

  /**
   * Current view of every configured worker. Unknown or long-stale workers are probed before returning;
   * recently-seen ready workers are returned at once and refreshed by a task handed to `background`.
   */
  async snapshot(background?: Background): Promise<WorkerState[]> {
    const now = Date.now();
    const { readyzTtlMs } = this.config.timeouts;
    const blocking: Promise<WorkerState>[] = [];
    for (const url of this.config.gpuWorkers) {
      const s = this.state(url);
      const age = now - s.checkedAt;
      if (age < readyzTtlMs) continue;
      if (s.downUntil > now) continue; // recently failed: leave it alone until the back-off ends
      const servedStale = s.readyz?.ready === true && age < readyzTtlMs * STALE_FACTOR && background !== undefined;
      if (servedStale) {
        if (!s.refreshing) {
          s.refreshing = true;
          background(() => this.probe(url).finally(() => (s.refreshing = false)));
        }
      } else {
        blocking.push(this.probe(url));
      }
    }
    await Promise.all(blocking);
    return this.config.gpuWorkers.map((url) => this.state(url));
  }

  /**
   * Workers that can take requests, best first: ready ones by score, then ones whose queue is full (alive and
   * holding their sessions, but a new request may be refused with 429). Throws 503 when there is none.
   */
  async ranked(background?: Background): Promise<WorkerState[]> {
    let states = await this.snapshot(background);
    let ready = states.filter(isUsable);
    if (ready.length === 0 && states.some((s) => s.downUntil > 0)) {
      // Everything is marked down: one synchronous re-probe, so a recovered pool is found without waiting
      // for the back-off to end.
      states = await Promise.all(this.config.gpuWorkers.map((url) => this.probe(url)));
      ready = states.filter(isUsable);
    }
    if (ready.length === 0) throw noWorkerAvailable(states);
    return ready.sort((a, b) => Number(!a.readyz!.ready) - Number(!b.readyz!.ready) || this.score(a) - this.score(b));
  }

  private score(s: WorkerState): number {
    const r = s.readyz!;
    return r.load + s.inflight / (1 + r.queue_capacity);
  }

  /** The context limit requests must fit: the configured bound and every ready worker's max_context. */
  maxContext(ready: readonly WorkerState[]): number {
    let limit = this.config.maxContext;
    for (const s of ready) if (s.readyz) limit = Math.min(limit, s.readyz.max_context);
    return limit;
  }

  /** Takes a worker out of rotation after a failure seen on the request path. */
  markDown(url: string, reason: string): void {
    const s = this.state(url);
    s.downUntil = Date.now() + this.config.timeouts.downMs;
    s.lastError = reason;
    s.checkedAt = Date.now();
  }

  acquire(url: string): () => void {
    const s = this.state(url);
    s.inflight++;
    let released = false;
    return () => {
      if (!released) s.inflight--;
      released = true;
    };
  }
}

/**
 * Alive: answering, and either ready or only refusing because its queue is full. A worker that is loading or
 * shutting down reports `ready: false` with room in its queue and is not used.
 */
export function isUsable(s: WorkerState): boolean {
  const r = s.readyz;
  if (r === null || s.downUntil > Date.now()) return false;
  return r.ready || (r.queue_capacity > 0 && r.queue_depth >= r.queue_capacity);
}

function noWorkerAvailable(states: readonly WorkerState[]): ApiError {
  const detail =
    states.length === 0
      ? "no GPU workers are configured (GPU_WORKERS is empty)"
      : `no GPU worker is ready (${states.map((s) => s.lastError ?? "unknown").join("; ")})`;
  return new ApiError(503, detail, "service_unavailable_error", "no_gpu_worker_available", null, { "retry-after": "5" });
}

export function describeFetchError(e: unknown): string {
  if (e instanceof Error) {
    if (e.name === "TimeoutError") return "timed out";
    return e.message;
  }
  return String(e);
}
