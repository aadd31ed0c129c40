/**
 * The queue consumer. A message only names a job; the job's Durable Object says what is due next. One
 * run: claim the job, generate (retrying at once on another GPU worker when one fails mid-job), store the
 * result, then make one delivery attempt. A failed delivery sends the message back to the queue with the
 * back-off as its delay; the last failed attempt hands the job to the dead-letter queue, whose consumer
 * marks it failed (its result stays readable). A message the queue itself gives up on (runs that kept
 * crashing) reaches the dead-letter queue the same way.
 */
import { z } from "zod";
import type { EdgeServices } from "../services.js";
import { signingKeyFor } from "./config.js";
import { deliverOnce } from "./delivery.js";
import { generateOnce } from "./generate.js";
import type { Claim, DeliveryRecord } from "./job-object.js";
import { backoffDelayMs, decideAfterAttempt, queueDelaySeconds } from "./retry-policy.js";
import type { JobRuntime, JobStore } from "./runtime.js";
import { checkCallbackUrl } from "./url-policy.js";

/** The part of a Queues message the consumer uses. */
export interface JobQueueMessage {
  readonly id: string;
  readonly body: unknown;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

const messageSchema = z.object({ job: z.string().regex(/^job_[0-9a-f]{32}$/), reason: z.string().max(1000).optional() });

type Log = EdgeServices["log"];

function retryLater(message: JobQueueMessage, delayMs: number): void {
  message.retry({ delaySeconds: queueDelaySeconds(delayMs) });
}

/** Delivery attempt `claim.attempt` of a job whose result is stored. */
async function deliver(claim: Extract<Claim, { action: "deliver" }>, runtime: JobRuntime): Promise<DeliveryRecord> {
  const { config } = runtime;
  const { spec } = claim;
  const refuse = (code: string, message: string): DeliveryRecord => ({
    outcome: "skipped",
    httpStatus: null,
    durationMs: null,
    error: message,
    responseExcerpt: null,
    nextAttemptAt: null,
    finalError: { code, message },
  });
  // Checked again: the policy or the keys may have changed since the job was accepted.
  const verdict = checkCallbackUrl(spec.webhook.url, { devMode: config.devMode });
  if (!verdict.ok) return refuse("webhook_url_refused", `webhook.url ${verdict.reason}`);
  const key = signingKeyFor(config, spec.webhook.secretId, spec.operatorSigned ? null : spec.owner);
  if (key === null) return refuse("webhook_secret_unavailable", `the signing key "${spec.webhook.secretId}" is no longer configured for this job's owner`);
  const disabled = await runtime.endpoint(spec.webhook.url).disabled();
  if (disabled !== null) {
    return refuse("webhook_endpoint_disabled", `the endpoint is disabled until ${new Date(disabled.until).toISOString()}: ${disabled.reason}`);
  }

  const report = await deliverOnce({
    url: verdict.url.href,
    webhookId: claim.webhookId,
    body: claim.payload,
    secrets: key.secrets,
    timeoutMs: config.deliveryTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
  });
  const now = Date.now();
  const decision = decideAfterAttempt(report.outcome, claim.attempt, config.maxDeliveryAttempts, config.retry, now);
  const { outcome } = report;
  const httpStatus = outcome.kind === "response" ? outcome.status : null;
  const error =
    outcome.kind === "response"
      ? outcome.status >= 200 && outcome.status < 300
        ? null
        : `the receiver answered HTTP ${outcome.status}`
      : outcome.kind === "timeout"
        ? `no complete answer within ${config.deliveryTimeoutMs} ms`
        : `network error: ${outcome.error}`;
  const base = { httpStatus, durationMs: report.durationMs, error, responseExcerpt: report.responseExcerpt };
  switch (decision.kind) {
    case "delivered":
      return { ...base, outcome: "delivered", nextAttemptAt: null, finalError: null };
    case "gone":
      return { ...base, outcome: "gone", nextAttemptAt: null, finalError: { code: "webhook_endpoint_gone", message: "the receiver answered 410 Gone: delivery stopped and the endpoint disabled" } };
    case "retry":
      return { ...base, outcome: "failed", nextAttemptAt: now + decision.delayMs, finalError: null };
    case "exhausted":
      return {
        ...base,
        outcome: "failed",
        nextAttemptAt: null,
        finalError: { code: "webhook_delivery_failed", message: `the webhook was not delivered after ${claim.attempt} attempts (last: ${error})` },
      };
  }
}

/** Processes one message of the job queue; never throws (failures become a retry of the message). */
export async function processJobMessage(message: JobQueueMessage, runtime: JobRuntime, services: EdgeServices): Promise<void> {
  const parsed = messageSchema.safeParse(message.body);
  if (!parsed.success) {
    services.log({ event: "job_message_malformed", message_id: message.id });
    message.ack(); // retrying cannot make it readable
    return;
  }
  const jobId = parsed.data.job;
  const job = runtime.job(jobId);
  const runId = crypto.randomUUID();
  try {
    await runJob(jobId, job, runId, message, runtime, services);
  } catch (error) {
    services.log({ event: "job_run_failed", job_id: jobId, attempt: message.attempts, error: String(error) });
    retryLater(message, backoffDelayMs(message.attempts, runtime.config.retry));
  }
}

async function runJob(jobId: string, job: JobStore, runId: string, message: JobQueueMessage, runtime: JobRuntime, services: EdgeServices): Promise<void> {
  const { config } = runtime;
  for (;;) {
    const claim = await job.claim(runId, config.leaseMs);
    switch (claim.action) {
      case "missing":
      case "finished":
        message.ack();
        return;
      case "busy":
        retryLater(message, claim.retryInMs);
        return;
      case "generate": {
        const attempt = await generateOnce(claim.spec, claim.gpuRequestId, services);
        const final = attempt.ok || attempt.permanent || claim.attempt >= config.maxGenerationAttempts;
        const next = await job.recordGeneration(runId, attempt.ok ? attempt : { ok: false, error: attempt.error, final });
        services.log({ event: "job_generation", job_id: jobId, attempt: claim.attempt, ok: attempt.ok, ...(attempt.ok ? {} : { error: attempt.error.code }), next });
        if (next === "cancelled" || next === "lost") {
          message.ack();
          return;
        }
        if (next === "generate" && !attempt.ok && attempt.poolUnavailable) {
          // No GPU worker at all: retrying now would fail the same way; come back after the back-off.
          const delayMs = backoffDelayMs(claim.attempt, config.retry);
          await job.release(runId, Date.now() + delayMs);
          retryLater(message, delayMs);
          return;
        }
        continue; // "deliver", or "generate" again at once: the failed worker is out of rotation now
      }
      case "deliver": {
        const record = await deliver(claim, runtime);
        const next = await job.recordDelivery(runId, record);
        services.log({ event: "job_delivery", job_id: jobId, attempt: claim.attempt, outcome: record.outcome, status: record.httpStatus, next });
        if (next === "deliver") {
          if (record.outcome === "gone") {
            await runtime.endpoint(claim.spec.webhook.url).disable("the endpoint answered 410 Gone", config.endpointDisabledMs);
          }
          if (record.nextAttemptAt !== null) {
            retryLater(message, record.nextAttemptAt - Date.now());
            return;
          }
          if (record.outcome === "failed") await runtime.deadLetter({ job: jobId, reason: record.finalError?.message ?? "delivery failed" });
        }
        message.ack();
        return;
      }
    }
  }
}

/** Processes one message of the dead-letter queue: the job is failed for good, its result kept. */
export async function processDeadLetter(message: JobQueueMessage, runtime: JobRuntime, services: EdgeServices): Promise<void> {
  const parsed = messageSchema.safeParse(message.body);
  if (!parsed.success) {
    services.log({ event: "dead_letter_malformed", message_id: message.id });
    message.ack();
    return;
  }
  const reason = parsed.data.reason ?? "the queue gave up on the job after repeated failed runs";
  try {
    await runtime.job(parsed.data.job).deadLetter(reason);
    services.log({ event: "job_dead_lettered", job_id: parsed.data.job, reason });
    message.ack();
  } catch (error) {
    services.log({ event: "dead_letter_failed", job_id: parsed.data.job, error: String(error) });
    message.retry({ delaySeconds: queueDelaySeconds(backoffDelayMs(message.attempts, runtime.config.retry)) });
  }
}
