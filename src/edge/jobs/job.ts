/**
 * The job as data: what the caller asked for (the spec, immutable), where it stands (the state), the log of
 * every attempt, and the public view `GET /v1/jobs/:id` returns. Shared by the Durable Object that stores
 * jobs and by the code that drives them; no I/O here.
 */

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export type JobKind = "chat.completion" | "text_completion";

export const TERMINAL: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

export interface JobSpec {
  id: string;
  /** SHA-256 of the submitting API key (or `hook:<name>`); only the owner can read or cancel the job. */
  owner: string;
  kind: JobKind;
  /** The generation request as JSON text, replayed to the endpoint handler that `kind` names. */
  body: string;
  /** Digest of the whole submitted request: the same Idempotency-Key with another request is a conflict. */
  requestHash: string;
  webhook: { url: string; secretId: string };
  metadata: Record<string, string> | null;
  /** `api` or `hook:<name>`. */
  source: string;
  /** Whether the signing key was chosen by an operator (inbound hook) rather than checked against the owner. */
  operatorSigned: boolean;
}

export interface JobError {
  message: string;
  code: string;
}

export type AttemptOutcome = "pending" | "succeeded" | "failed" | "abandoned" | "cancelled" | "delivered" | "gone" | "skipped";

export interface AttemptLog {
  kind: "generation" | "delivery";
  /** 1-based, counted per kind. */
  number: number;
  started_at: string;
  finished_at: string | null;
  outcome: AttemptOutcome;
  error: string | null;
  /** Generation: the request id the GPU worker saw. */
  gpu_request_id?: string;
  /** Delivery: the receiver's status, if it answered. */
  http_status?: number | null;
  duration_ms?: number | null;
  response_excerpt?: string | null;
  /** Delivery: when the next attempt is due, if one is scheduled. */
  next_attempt_at?: string | null;
}

export interface JobState {
  status: JobStatus;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  cancelledAt: number | null;
  generationAttempts: number;
  deliveryAttempts: number;
  /** Sequence number of the next attempt log entry. */
  logSeq: number;
  /** Key of the attempt log entry still open (a run is in it). */
  openAttempt: string | null;
  /** The webhook body, set once the generation has ended (the result is stored before any delivery). */
  payload: string | null;
  error: JobError | null;
  lease: { runId: string; until: number } | null;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  deadLetteredAt: number | null;
}

export interface JobView {
  id: string;
  object: "job";
  status: JobStatus;
  kind: JobKind;
  source: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  cancelled_at: string | null;
  metadata: Record<string, string> | null;
  webhook: {
    url: string;
    secret_id: string;
    /** Stable across attempts: receivers de-duplicate on it. */
    webhook_id: string;
    delivered_at: string | null;
    next_attempt_at: string | null;
    dead_lettered_at: string | null;
  };
  attempts: AttemptLog[];
  /** The OpenAI response object, once generated (kept whatever happens to the delivery). */
  result: Record<string, unknown> | null;
  error: JobError | null;
}

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The Standard Webhooks message id of a job: one event per job, the same on every attempt. */
export const webhookIdFor = (jobId: string): string => `msg_${jobId.replace(/^job_/, "")}`;

export function initialState(now: number): JobState {
  return {
    status: "queued",
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    cancelledAt: null,
    generationAttempts: 0,
    deliveryAttempts: 0,
    logSeq: 0,
    openAttempt: null,
    payload: null,
    error: null,
    lease: null,
    nextAttemptAt: null,
    deliveredAt: null,
    deadLetteredAt: null,
  };
}

/** The webhook body (Standard Webhooks' `{type, timestamp, data}` envelope), fixed when generation ends. */
export function webhookPayload(spec: JobSpec, state: JobState, now: number, result: Record<string, unknown> | null, error: JobError | null): string {
  const status = error === null ? "succeeded" : "failed";
  return JSON.stringify({
    type: `job.${status}`,
    timestamp: new Date(now).toISOString(),
    data: {
      id: spec.id,
      object: "job",
      status,
      kind: spec.kind,
      created_at: iso(state.createdAt),
      metadata: spec.metadata,
      result,
      error,
    },
  });
}

function resultOf(payload: string | null): Record<string, unknown> | null {
  if (payload === null) return null;
  const parsed = JSON.parse(payload) as { data: { result: Record<string, unknown> | null } };
  return parsed.data.result;
}

export function jobView(spec: JobSpec, state: JobState, attempts: AttemptLog[]): JobView {
  return {
    id: spec.id,
    object: "job",
    status: state.status,
    kind: spec.kind,
    source: spec.source,
    created_at: iso(state.createdAt)!,
    started_at: iso(state.startedAt),
    finished_at: iso(state.finishedAt),
    cancelled_at: iso(state.cancelledAt),
    metadata: spec.metadata,
    webhook: {
      url: spec.webhook.url,
      secret_id: spec.webhook.secretId,
      webhook_id: webhookIdFor(spec.id),
      delivered_at: iso(state.deliveredAt),
      next_attempt_at: iso(state.nextAttemptAt),
      dead_lettered_at: iso(state.deadLetteredAt),
    },
    attempts,
    result: resultOf(state.payload),
    error: state.error,
  };
}
