/// <reference types="@cloudflare/workers-types" />
/**
 * Helpers for the job tests (workerd side): the scripted receiver's control API, job submission and
 * polling through the real gateway, the consumer run by hand for jobs parked on the unconsumed queue, and
 * signed GPU-worker status reads.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { Webhook } from "standardwebhooks";
import type { JobView } from "../../../src/edge/jobs/job.js";
import worker from "../../../src/edge/worker.js";
import { readyzSchema, signWorkerRequest, type Readyz } from "../../../src/protocol/index.js";
import { API_KEY_HASH, bindings, edge, post, type Overrides } from "../helpers.js";
import type { RecordedRequest, ScriptedAnswer } from "./receiver.js";

export interface JobTestBindings {
  RECEIVER_URL: string;
  WEBHOOK_SIGNING_CURRENT: string;
  WEBHOOK_SIGNING_PREVIOUS: string;
  HOOK_SECRET_STANDARD: string;
  HOOK_SECRET_GITHUB: string;
  JOB_QUEUE_HELD: Queue;
}

export const jobBindings = bindings as unknown as typeof bindings & JobTestBindings;

export const MODEL = "meta-llama/Llama-3.1-8B-Instruct";

export const chatJob = (webhookUrl: string, extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: "user", content: "Say something about queues." }],
  max_tokens: 6,
  temperature: 0,
  webhook: { url: webhookUrl },
  ...extra,
});

export const receiver = {
  async endpoint(responses: ScriptedAnswer[] = [], then?: ScriptedAnswer): Promise<{ id: string; url: string }> {
    const res = await fetch(`${jobBindings.RECEIVER_URL}/_control/endpoints`, { method: "POST", body: JSON.stringify({ responses, then }) });
    if (!res.ok) throw new Error(`receiver: ${await res.text()}`);
    return res.json();
  },
  async requests(id: string): Promise<RecordedRequest[]> {
    const res = await fetch(`${jobBindings.RECEIVER_URL}/_control/endpoints/${id}`);
    if (!res.ok) throw new Error(`receiver: ${await res.text()}`);
    return ((await res.json()) as { requests: RecordedRequest[] }).requests;
  },
};

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface SubmitOptions {
  headers?: Record<string, string>;
  key?: string | null;
  env?: Overrides;
}

export async function submit(body: unknown, options: SubmitOptions = {}): Promise<Response> {
  return post("/v1/jobs", body, options);
}

/** Submits and returns the job id (the submit must be accepted). */
export async function submitOk(body: unknown, options: SubmitOptions = {}): Promise<string> {
  const res = await submit(body, options);
  const json = (await res.json()) as { id?: string };
  if (res.status !== 202 || typeof json.id !== "string") throw new Error(`submit answered ${res.status}: ${JSON.stringify(json)}`);
  return json.id;
}

export async function getJob(id: string, env: Overrides = {}): Promise<JobView> {
  const res = await edge(`/v1/jobs/${id}`, { headers: { authorization: `Bearer sk-test-edge-0123456789abcdef` } }, env);
  if (res.status !== 200) throw new Error(`GET job answered ${res.status}: ${await res.text()}`);
  return res.json();
}

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export function waitForJob(id: string, until: (job: JobView) => boolean = (j) => FINISHED.has(j.status), timeoutMs = 20_000, env: Overrides = {}): Promise<JobView> {
  return waitFor(async () => {
    const job = await getJob(id, env);
    return until(job) ? job : undefined;
  }, timeoutMs, `job ${id}`);
}

/** The payload if the recorded delivery verifies with `secret` (throws otherwise), as the receiver would check. */
export function verifyDelivery(secret: string, request: RecordedRequest): Record<string, unknown> {
  return new Webhook(secret).verify(request.body, request.headers) as Record<string, unknown>;
}

/** Runs the real queue consumer on one message for `jobId`, with `env` (e.g. a pool of test-owned workers). */
export async function consumeByHand(jobId: string, env: Overrides, attempts = 1): Promise<{ acked: boolean; retried: boolean }> {
  const batch = createMessageBatch("llama-edge-jobs", [{ id: `by-hand-${jobId}-${attempts}`, timestamp: new Date(), attempts, body: { job: jobId } }]);
  const ctx = createExecutionContext();
  await worker.queue(batch, { ...bindings, API_KEY_HASHES: API_KEY_HASH, ...env } as never, ctx);
  await waitOnExecutionContext(ctx);
  const result = await getQueueResult(batch, ctx);
  // (The test pool's result does not carry retry delays; tests read the job's next_attempt_at instead.)
  const id = batch.messages[0]!.id;
  return { acked: result.explicitAcks.includes(id), retried: result.retryMessages.some((m) => m.msgId === id) };
}

export async function readyzOf(url: string): Promise<Readyz> {
  const headers = await signWorkerRequest(bindings.WORKER_SECRET, { method: "GET", path: "/readyz", body: "" });
  return readyzSchema.parse(await (await fetch(`${url}/readyz`, { headers })).json());
}

/** `le_worker_requests_total` of one worker by outcome. */
export async function requestOutcomes(url: string): Promise<Record<string, number>> {
  const headers = await signWorkerRequest(bindings.WORKER_SECRET, { method: "GET", path: "/metrics", body: "" });
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^le_worker_requests_total\{outcome="([^"]+)"\} (\S+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}
