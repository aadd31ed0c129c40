/**
 * Jobs whose GPU side misbehaves, or that are cancelled while running, in workerd. These jobs are parked on
 * a queue nobody consumes (JOB_QUEUE_HELD) and the real consumer is run by hand on their message, with a
 * pool of GPU workers owned by the test, so a worker can be killed (or a job cancelled) while it generates.
 * The watchdog test starts from the same parked job: its message is lost, and the job's own alarm puts it
 * back on the real queue.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { API_KEY, edge, supervisor } from "./helpers.js";
import { chatJob, consumeByHand, getJob, jobBindings, readyzOf, receiver, requestOutcomes, submitOk, waitFor, waitForJob } from "./jobs/helpers.js";

/** Long enough (hundreds of tiny-model tokens, seconds of work) for a kill or a cancel to land mid-generation. */
const LONG = { max_tokens: 500, temperature: 0 };

const auth = { authorization: `Bearer ${API_KEY}` };

describe("GPU failures and cancellation mid-job", () => {
  it("retries a job whose GPU worker is killed mid-generation and completes it on another worker", async () => {
    const workers = await Promise.all([supervisor.spawn(), supervisor.spawn()]);
    const env = { GPU_WORKERS: workers.map((w) => w.url).join(","), JOB_QUEUE: jobBindings.JOB_QUEUE_HELD };
    const endpoint = await receiver.endpoint();
    const id = await submitOk(chatJob(endpoint.url, LONG), { env });
    const run = consumeByHand(id, env);
    const busy = await waitFor(async () => {
      for (const w of workers) if ((await readyzOf(w.url)).running > 0) return w;
      return undefined;
    }, 15_000, "a worker to start generating");
    await new Promise((r) => setTimeout(r, 300)); // tokens are flowing
    await supervisor.act(busy.id, "kill");
    const survivor = workers.find((w) => w !== busy)!;

    const consumed = await run;
    expect(consumed).toMatchObject({ acked: true, retried: false });
    const job = await getJob(id, env);
    expect(job.status).toBe("succeeded");
    const generations = job.attempts.filter((a) => a.kind === "generation");
    expect(generations.map((a) => a.outcome)).toEqual(["failed", "succeeded"]);
    expect(generations[0]!.error).toContain("gpu_worker_failed");
    expect(generations.map((a) => a.gpu_request_id)).toEqual([`${id}.g1`, `${id}.g2`]);
    // The second attempt ran on the survivor, to the end.
    const outcomes = await requestOutcomes(survivor.url);
    expect((outcomes.length ?? 0) + (outcomes.stop ?? 0)).toBe(1);
    const requests = await receiver.requests(endpoint.id);
    expect(requests).toHaveLength(1);
    const usage = (job.result as { usage: { completion_tokens: number } }).usage;
    expect(usage.completion_tokens).toBeGreaterThan(0);
  });

  it("cancels a running job: the GPU request stops, nothing is delivered, the run acknowledges its message", async () => {
    const worker = await supervisor.spawn();
    const env = { GPU_WORKERS: worker.url, JOB_QUEUE: jobBindings.JOB_QUEUE_HELD };
    const endpoint = await receiver.endpoint();
    const id = await submitOk(chatJob(endpoint.url, LONG), { env });
    const run = consumeByHand(id, env);
    await waitFor(async () => ((await readyzOf(worker.url)).running > 0 ? true : undefined), 15_000, "the worker to start generating");

    const cancelled = await edge(`/v1/jobs/${id}`, { method: "DELETE", headers: auth }, env);
    expect(cancelled.status).toBe(200);
    expect(((await cancelled.json()) as { status: string }).status).toBe("cancelled");
    const consumed = await run;
    expect(consumed.acked).toBe(true);
    expect((await requestOutcomes(worker.url)).cancelled).toBe(1);
    await waitFor(async () => ((await readyzOf(worker.url)).running === 0 ? true : undefined), 5_000, "the worker to go idle");

    const job = await getJob(id, env);
    expect(job.status).toBe("cancelled");
    expect(job.cancelled_at).not.toBeNull();
    expect(job.attempts.map((a) => [a.kind, a.outcome])).toEqual([["generation", "cancelled"]]);
    expect(job.result).toBeNull();
    expect(await receiver.requests(endpoint.id)).toHaveLength(0);
    const again = await edge(`/v1/jobs/${id}`, { method: "DELETE", headers: auth }, env);
    expect(again.status).toBe(409);
  });

  it("cancels a queued job before any run; a later run only acknowledges it", async () => {
    const env = { JOB_QUEUE: jobBindings.JOB_QUEUE_HELD };
    const endpoint = await receiver.endpoint();
    const id = await submitOk(chatJob(endpoint.url), { env });
    expect((await getJob(id)).status).toBe("queued");
    const cancelled = await edge(`/v1/jobs/${id}`, { method: "DELETE", headers: auth });
    expect(cancelled.status).toBe(200);
    expect(await consumeByHand(id, env)).toMatchObject({ acked: true, retried: false });
    const job = await getJob(id);
    expect(job.status).toBe("cancelled");
    expect(job.started_at).toBeNull();
    expect(job.attempts).toEqual([]);
    expect(await receiver.requests(endpoint.id)).toHaveLength(0);
  });

  it("runs a job once when two messages for it arrive together, and a duplicate cannot cut a back-off short", async () => {
    // Ten-second back-offs for this consumer, so a premature second message is easy to tell.
    const env = { JOB_QUEUE: jobBindings.JOB_QUEUE_HELD, WEBHOOK_RETRY_BASE_MS: "10000", WEBHOOK_RETRY_MAX_MS: "10000" };
    const endpoint = await receiver.endpoint([{ status: 500 }]);
    const id = await submitOk(chatJob(endpoint.url, LONG), { env });
    const first = consumeByHand(id, env, 1);
    await waitFor(async () => ((await getJob(id)).status === "running" ? true : undefined), 10_000, "the first run to claim the job");
    // The second message finds the job leased by a live run and comes back later.
    const second = await consumeByHand(id, env, 1);
    expect(second).toMatchObject({ acked: false, retried: true });
    expect((await getJob(id)).attempts.filter((a) => a.kind === "generation")).toHaveLength(1);
    // The first run generates, and its delivery fails (500): the message comes back after 5-10 s.
    expect(await first).toMatchObject({ acked: false, retried: true });
    const afterFirst = await getJob(id);
    const backoff = Date.parse(afterFirst.webhook.next_attempt_at!) - Date.now();
    expect(backoff).toBeGreaterThan(3_000);
    // A third message now must wait for the back-off instead of delivering at once.
    expect(await consumeByHand(id, env, 2)).toMatchObject({ acked: false, retried: true });
    expect(await receiver.requests(endpoint.id)).toHaveLength(1);
    const job = await getJob(id);
    expect(job.status).toBe("running");
    expect(job.attempts.map((a) => [a.kind, a.outcome])).toEqual([
      ["generation", "succeeded"],
      ["delivery", "failed"],
    ]);
    // Cancelling ends it; the pending message will only acknowledge.
    expect((await edge(`/v1/jobs/${id}`, { method: "DELETE", headers: auth })).status).toBe(200);
  });

  it("puts a job whose queue message was lost back on the queue from its watchdog alarm", async () => {
    const endpoint = await receiver.endpoint();
    // Submitted to the queue nobody consumes: as if the message had been lost.
    const id = await submitOk(chatJob(endpoint.url), { env: { JOB_QUEUE: jobBindings.JOB_QUEUE_HELD } });
    await new Promise((r) => setTimeout(r, 300));
    expect((await getJob(id)).status).toBe("queued");
    const stub = jobBindings.GENERATION_JOBS!.get(jobBindings.GENERATION_JOBS!.idFromName(id));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const job = await waitForJob(id);
    expect(job.status).toBe("succeeded");
    expect(await receiver.requests(endpoint.id)).toHaveLength(1);
  });
});
