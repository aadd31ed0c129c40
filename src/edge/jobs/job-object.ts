/// <reference types="@cloudflare/workers-types" />
/**
 * `GenerationJob`, a Durable Object per job (SQLite-backed storage). Why a Durable Object rather than KV or
 * R2: every transition here is a read-modify-write that must not race (two consumer runs of the same
 * message, a cancel arriving mid-generation, a replayed Idempotency-Key), and an object is single-threaded
 * and strongly consistent, so each method below is one atomic step. KV is eventually consistent (a second
 * submit could miss the first) and R2 has no compare-and-set over several fields.
 *
 * The object is the source of truth; the queue only says "look at job X". A run *claims* the job with a
 * lease (a crashed run's lease expires and another run takes over), opens an attempt in the log, and
 * records its outcome; the result is stored before any delivery, and stays after every outcome. Finished
 * states are final: cancel and late results cannot overwrite one another. An alarm is the watchdog: a job
 * that made no progress for `JOB_WATCHDOG_S` is put back on the queue (nothing is lost if a message is),
 * and a finished job is deleted after `JOB_RETENTION_S`.
 */
import { DurableObject } from "cloudflare:workers";
import { parseJobsConfig, type JobsConfig, type JobsVars } from "./config.js";
import {
  initialState,
  iso,
  jobView,
  TERMINAL,
  webhookIdFor,
  webhookPayload,
  type AttemptLog,
  type AttemptOutcome,
  type JobError,
  type JobSpec,
  type JobState,
  type JobView,
} from "./job.js";

/** What the queue carries: only the job's id (the object holds everything else). */
export interface JobMessage {
  job: string;
  /** Set on dead-letter messages the consumer sends itself. */
  reason?: string;
}

export interface JobObjectEnv extends JobsVars {
  JOB_QUEUE: Queue<JobMessage>;
}

export type CreateResult = { kind: "created" | "existing"; view: JobView } | { kind: "conflict" };

export type Claim =
  | { action: "missing" }
  | { action: "finished"; status: JobView["status"] }
  | { action: "busy"; retryInMs: number }
  | { action: "generate"; spec: JobSpec; attempt: number; gpuRequestId: string }
  | { action: "deliver"; spec: JobSpec; attempt: number; webhookId: string; payload: string };

export type GenerationResult =
  | { ok: true; result: Record<string, unknown> }
  | { ok: false; error: JobError; final: boolean };

/** After recording: go on delivering, try generating again, or stop (cancelled, or another run owns the job). */
export type AfterRecord = "deliver" | "generate" | "cancelled" | "lost";

export interface DeliveryRecord {
  outcome: Extract<AttemptOutcome, "delivered" | "failed" | "gone" | "skipped">;
  httpStatus: number | null;
  durationMs: number | null;
  error: string | null;
  responseExcerpt: string | null;
  /** A retry is scheduled at this time (ms); null: no further attempt. */
  nextAttemptAt: number | null;
  /** The job's final error when no attempt follows and the delivery failed. */
  finalError: JobError | null;
}

export type CancelResult =
  | { kind: "not_found" }
  | { kind: "already_finished"; view: JobView }
  | { kind: "cancelled"; view: JobView; gpuRequestId: string | null };

const SPEC = "spec";
const STATE = "state";
const ATTEMPT_PREFIX = "attempt:";
const CLOCK_SLACK_MS = 1_000;
/** A stored value may be 2 MB; a UTF-16 length bound keeps the UTF-8 payload safely under it. */
const MAX_PAYLOAD_CHARS = 600_000;

export class GenerationJob extends DurableObject<JobObjectEnv> {
  private configCache: JobsConfig | undefined;

  private get config(): JobsConfig {
    this.configCache ??= parseJobsConfig(this.env);
    return this.configCache;
  }

  private async load(): Promise<{ spec: JobSpec; state: JobState } | null> {
    const stored = await this.ctx.storage.get<JobSpec | JobState>([SPEC, STATE]);
    const spec = stored.get(SPEC) as JobSpec | undefined;
    const state = stored.get(STATE) as JobState | undefined;
    return spec === undefined || state === undefined ? null : { spec, state };
  }

  private async attempts(): Promise<AttemptLog[]> {
    const entries = await this.ctx.storage.list<AttemptLog>({ prefix: ATTEMPT_PREFIX });
    return [...entries.values()];
  }

  private async view(spec: JobSpec, state: JobState): Promise<JobView> {
    return jobView(spec, state, await this.attempts());
  }

  /** Saves the state (plus log entries) in one write and re-arms the alarm for it. */
  private async save(state: JobState, entries: Record<string, AttemptLog> = {}): Promise<void> {
    await this.ctx.storage.put({ [STATE]: state, ...entries });
    const now = Date.now();
    const alarmAt = TERMINAL.has(state.status)
      ? (state.finishedAt ?? now) + this.config.retentionMs
      : Math.max(now, state.lease?.until ?? 0, state.nextAttemptAt ?? 0) + this.config.watchdogMs;
    await this.ctx.storage.setAlarm(alarmAt);
  }

  private openEntry(state: JobState, entry: AttemptLog): Record<string, AttemptLog> {
    const key = `${ATTEMPT_PREFIX}${String(state.logSeq).padStart(6, "0")}`;
    state.logSeq++;
    state.openAttempt = key;
    return { [key]: entry };
  }

  /** Closes the open log entry (if any) with `patch`. */
  private async closeEntry(state: JobState, patch: Partial<AttemptLog>, now: number): Promise<Record<string, AttemptLog>> {
    const key = state.openAttempt;
    if (key === null) return {};
    state.openAttempt = null;
    const entry = await this.ctx.storage.get<AttemptLog>(key);
    if (entry === undefined) return {};
    return { [key]: { ...entry, finished_at: iso(now), ...patch } };
  }

  private finish(state: JobState, status: "succeeded" | "failed" | "cancelled", now: number, error: JobError | null = null): void {
    state.status = status;
    state.finishedAt = now;
    state.lease = null;
    state.nextAttemptAt = null;
    if (error !== null) state.error = error;
  }

  /** Stores a new job, or answers for the one already stored under this id (idempotent submit). */
  async create(spec: JobSpec): Promise<CreateResult> {
    const existing = await this.load();
    if (existing !== null) {
      if (existing.spec.requestHash !== spec.requestHash || existing.spec.owner !== spec.owner) return { kind: "conflict" };
      return { kind: "existing", view: await this.view(existing.spec, existing.state) };
    }
    const state = initialState(Date.now());
    await this.ctx.storage.put(SPEC, spec);
    await this.save(state);
    return { kind: "created", view: await this.view(spec, state) };
  }

  /** Drops a job whose message could not be queued (the submit failed, so nobody knows its id). */
  async discard(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }

  /** The job for its owner; null when absent or owned by someone else (indistinguishable on purpose). */
  async read(owner: string): Promise<JobView | null> {
    const job = await this.load();
    if (job === null || job.spec.owner !== owner) return null;
    return this.view(job.spec, job.state);
  }

  /**
   * A consumer run takes the job for `leaseMs`, or learns that it is finished or owned by a live run. The same
   * run may claim again (generation done, delivery next). Opens the attempt it will make.
   */
  async claim(runId: string, leaseMs: number): Promise<Claim> {
    const job = await this.load();
    if (job === null) return { action: "missing" };
    const { spec, state } = job;
    if (TERMINAL.has(state.status)) return { action: "finished", status: state.status };
    const now = Date.now();
    if (state.lease !== null && state.lease.runId !== runId && state.lease.until > now) {
      return { action: "busy", retryInMs: state.lease.until - now };
    }
    // A second message for the job (the watchdog's, or a redelivery) must not cut a back-off short. The
    // slack absorbs clock differences between the consumer that set the time and this object.
    if (state.nextAttemptAt !== null && state.nextAttemptAt - now > CLOCK_SLACK_MS) {
      return { action: "busy", retryInMs: state.nextAttemptAt - now };
    }
    // A previous run that died mid-attempt left its entry open.
    const entries = await this.closeEntry(state, { outcome: "abandoned", error: "the run making this attempt stopped before recording it" }, now);
    state.lease = { runId, until: now + leaseMs };
    state.nextAttemptAt = null;
    if (state.status === "queued") {
      state.status = "running";
      state.startedAt = now;
    }
    if (state.payload === null) {
      const attempt = ++state.generationAttempts;
      const gpuRequestId = `${spec.id}.g${attempt}`;
      Object.assign(entries, this.openEntry(state, { kind: "generation", number: attempt, started_at: iso(now)!, finished_at: null, outcome: "pending", error: null, gpu_request_id: gpuRequestId }));
      await this.save(state, entries);
      return { action: "generate", spec, attempt, gpuRequestId };
    }
    const attempt = ++state.deliveryAttempts;
    Object.assign(entries, this.openEntry(state, { kind: "delivery", number: attempt, started_at: iso(now)!, finished_at: null, outcome: "pending", error: null, http_status: null }));
    await this.save(state, entries);
    return { action: "deliver", spec, attempt, webhookId: webhookIdFor(spec.id), payload: state.payload };
  }

  /** Records a generation attempt; a final outcome (result or permanent error) fixes the webhook body. */
  async recordGeneration(runId: string, result: GenerationResult): Promise<AfterRecord> {
    const job = await this.load();
    if (job === null) return "lost";
    const { spec, state } = job;
    if (state.status === "cancelled") return "cancelled";
    if (TERMINAL.has(state.status) || state.lease?.runId !== runId) return "lost";
    const now = Date.now();
    const entries = await this.closeEntry(
      state,
      result.ok ? { outcome: "succeeded" } : { outcome: "failed", error: `${result.error.code}: ${result.error.message}` },
      now,
    );
    if (result.ok) {
      state.payload = webhookPayload(spec, state, now, result.result, null);
      if (state.payload.length > MAX_PAYLOAD_CHARS) {
        // Too big to store (and to deliver sensibly): the job fails, saying why, instead of retrying forever.
        state.error = { code: "result_too_large", message: `the result is ${state.payload.length} characters; jobs keep at most ${MAX_PAYLOAD_CHARS} (lower max_tokens or top_logprobs)` };
        state.payload = webhookPayload(spec, state, now, null, state.error);
      }
    } else if (result.final) {
      state.payload = webhookPayload(spec, state, now, null, result.error);
      state.error = result.error;
    } else {
      state.lease = { runId, until: now + this.config.leaseMs };
      await this.save(state, entries);
      return "generate";
    }
    await this.save(state, entries);
    return "deliver";
  }

  /** Gives the job back to the queue after a failed attempt, due again at `nextAttemptAt`. */
  async release(runId: string, nextAttemptAt: number): Promise<void> {
    const job = await this.load();
    if (job === null || job.state.lease?.runId !== runId || TERMINAL.has(job.state.status)) return;
    job.state.lease = null;
    job.state.nextAttemptAt = nextAttemptAt;
    await this.save(job.state);
  }

  /** Records a delivery attempt and what follows it. */
  async recordDelivery(runId: string, record: DeliveryRecord): Promise<AfterRecord> {
    const job = await this.load();
    if (job === null) return "lost";
    const { state } = job;
    const now = Date.now();
    const entries = await this.closeEntry(
      state,
      {
        outcome: record.outcome,
        http_status: record.httpStatus,
        duration_ms: record.durationMs,
        error: record.error,
        response_excerpt: record.responseExcerpt,
        next_attempt_at: iso(record.nextAttemptAt),
      },
      now,
    );
    // The log keeps the attempt even when the job was cancelled or taken over meanwhile.
    if (state.status === "cancelled" || TERMINAL.has(state.status) || state.lease?.runId !== runId) {
      await this.save(state, entries);
      return state.status === "cancelled" ? "cancelled" : "lost";
    }
    if (record.outcome === "delivered") {
      state.deliveredAt = now;
      // A job whose generation failed permanently stays failed, its failure now delivered.
      this.finish(state, state.error === null ? "succeeded" : "failed", now);
    } else if (record.nextAttemptAt !== null) {
      state.lease = null;
      state.nextAttemptAt = record.nextAttemptAt;
    } else {
      this.finish(state, "failed", now, record.finalError ?? { code: "webhook_delivery_failed", message: "the webhook could not be delivered" });
    }
    await this.save(state, entries);
    return "deliver";
  }

  /** Cancels a queued or running job; the caller stops the GPU request named in the answer. */
  async cancel(owner: string): Promise<CancelResult> {
    const job = await this.load();
    if (job === null || job.spec.owner !== owner) return { kind: "not_found" };
    const { spec, state } = job;
    if (TERMINAL.has(state.status)) return { kind: "already_finished", view: await this.view(spec, state) };
    const now = Date.now();
    let gpuRequestId: string | null = null;
    if (state.openAttempt !== null) {
      const open = await this.ctx.storage.get<AttemptLog>(state.openAttempt);
      if (open?.kind === "generation") gpuRequestId = open.gpu_request_id ?? null;
    }
    const entries = await this.closeEntry(state, { outcome: "cancelled", error: "cancelled by the owner" }, now);
    state.cancelledAt = now;
    this.finish(state, "cancelled", now);
    await this.save(state, entries);
    return { kind: "cancelled", view: await this.view(spec, state), gpuRequestId };
  }

  /** The job's message reached the dead-letter queue: it is failed for good (its result, if any, stays). */
  async deadLetter(reason: string): Promise<void> {
    const job = await this.load();
    if (job === null) return;
    const { state } = job;
    const now = Date.now();
    state.deadLetteredAt ??= now;
    if (!TERMINAL.has(state.status)) {
      const entries = await this.closeEntry(state, { outcome: "abandoned", error: reason }, now);
      this.finish(state, "failed", now, { code: "dead_lettered", message: reason });
      await this.save(state, entries);
      return;
    }
    await this.save(state);
  }

  override async alarm(): Promise<void> {
    const job = await this.load();
    if (job === null) return;
    if (TERMINAL.has(job.state.status)) {
      await this.ctx.storage.deleteAll();
      return;
    }
    // No progress for the watchdog period: the queue lost track of the job, or every run crashed. The
    // lease (if any) has long expired, so the run this message starts can claim it.
    await this.env.JOB_QUEUE.send({ job: job.spec.id });
    await this.save(job.state);
  }
}
