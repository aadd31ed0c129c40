/**
 * When to try a webhook delivery again, and whether to at all. Pure functions of the attempt's outcome, so
 * the schedule can be tested exactly with a fixed random source.
 *
 * Delays grow exponentially (base × 2^(n-1) after the n-th failed attempt, capped) with "equal jitter":
 * half the delay is fixed and half is random, so retries from many jobs that failed together spread out
 * without ever collapsing to an immediate retry. A receiver's `Retry-After` (on 429 and 503) is honoured as
 * a lower bound. Queues cap a message's delay at 12 hours, and so do we.
 *
 * Outcomes (Standard Webhooks, "delivery"): 2xx delivered; 410 Gone stops and disables the endpoint; any
 * other status (3xx included: redirects are not followed), a network error or a timeout is a failure
 * retried until the attempt budget is spent.
 */
import { MAX_QUEUE_DELAY_MS, type RetrySchedule } from "./config.js";

/** What one delivery attempt observed. */
export type AttemptOutcome =
  | { kind: "response"; status: number; retryAfter: string | null }
  | { kind: "network_error"; error: string }
  | { kind: "timeout" };

export type DeliveryDecision =
  | { kind: "delivered" }
  | { kind: "gone" }
  | { kind: "retry"; delayMs: number }
  | { kind: "exhausted" };

/** Delay after the `failedAttempts`-th consecutive failure (1 = the first attempt failed). */
export function backoffDelayMs(failedAttempts: number, schedule: RetrySchedule, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(failedAttempts - 1, 0), 40);
  const ceiling = Math.min(schedule.maxMs, schedule.baseMs * 2 ** exponent, MAX_QUEUE_DELAY_MS);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_QUEUE_DELAY_MS);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.min(Math.max(date - now, 0), MAX_QUEUE_DELAY_MS);
}

const isSuccess = (status: number) => status >= 200 && status < 300;

/** The next step after delivery attempt number `attempt` (1-based) out of `maxAttempts`. */
export function decideAfterAttempt(
  outcome: AttemptOutcome,
  attempt: number,
  maxAttempts: number,
  schedule: RetrySchedule,
  now: number,
  random: () => number = Math.random,
): DeliveryDecision {
  if (outcome.kind === "response") {
    if (isSuccess(outcome.status)) return { kind: "delivered" };
    if (outcome.status === 410) return { kind: "gone" };
  }
  if (attempt >= maxAttempts) return { kind: "exhausted" };
  let delayMs = backoffDelayMs(attempt, schedule, random);
  if (outcome.kind === "response" && (outcome.status === 429 || outcome.status === 503)) {
    const asked = parseRetryAfter(outcome.retryAfter, now);
    if (asked !== null) delayMs = Math.max(delayMs, asked);
  }
  return { kind: "retry", delayMs: Math.min(delayMs, MAX_QUEUE_DELAY_MS) };
}

/** A delay as Queues wants it: whole seconds, rounded up so a receiver's Retry-After is never undercut. */
export function queueDelaySeconds(delayMs: number): number {
  return Math.min(Math.ceil(delayMs / 1000), MAX_QUEUE_DELAY_MS / 1000);
}
