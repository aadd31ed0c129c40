/**
 * Webhook-driven generation end to end, in workerd: `POST /v1/jobs` through the gateway, the real local
 * queue and its consumer, the real GPU workers (tiny model), and a real HTTP receiver (Node) scripted per
 * test. Deliveries are verified by the receiver's side with the `standardwebhooks` package; retry tests use
 * one-second back-offs and four attempts (test/edge/jobs/receiver-setup.ts).
 */
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/edge/auth.js";
import { API_KEY, API_KEY_HASH, edge, post } from "./helpers.js";
import { chatJob, getJob, jobBindings, MODEL, receiver, submit, submitOk, verifyDelivery, waitFor, waitForJob } from "./jobs/helpers.js";

interface Delivered {
  type: string;
  timestamp: string;
  data: {
    id: string;
    status: string;
    kind: string;
    metadata: Record<string, string> | null;
    result: {
      object: string;
      choices: { message?: { content: string }; text?: string; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    } | null;
    error: { code: string; message: string } | null;
  };
}

const deliveryAttempts = (job: Awaited<ReturnType<typeof getJob>>) => job.attempts.filter((a) => a.kind === "delivery");

describe("one job, one signed delivery", () => {
  it("delivers exactly once, signed with every key of the rotation, with the completion and its usage", async () => {
    const endpoint = await receiver.endpoint();
    const body = chatJob(endpoint.url, { metadata: { order: "A-17" } });
    const res = await submit(body);
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; status: string; status_url: string };
    expect(accepted.id).toMatch(/^job_[0-9a-f]{32}$/);
    expect(accepted.status_url).toBe(`http://edge.test/v1/jobs/${accepted.id}`);
    expect(res.headers.get("location")).toBe(accepted.status_url);

    const job = await waitForJob(accepted.id);
    expect(job.status).toBe("succeeded");
    const requests = await receiver.requests(endpoint.id);
    expect(requests).toHaveLength(1);
    const [delivery] = requests;
    // A receiver holding either secret of the rotation accepts it.
    const payload = verifyDelivery(jobBindings.WEBHOOK_SIGNING_CURRENT, delivery!) as unknown as Delivered;
    expect(verifyDelivery(jobBindings.WEBHOOK_SIGNING_PREVIOUS, delivery!)).toEqual(payload);
    expect(delivery!.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(delivery!.headers["webhook-id"]).toBe(job.webhook.webhook_id);
    expect(Math.abs(Number(delivery!.headers["webhook-timestamp"]) * 1000 - delivery!.at)).toBeLessThan(2_000);

    expect(payload.type).toBe("job.succeeded");
    expect(payload.data).toMatchObject({ id: accepted.id, status: "succeeded", kind: "chat.completion", metadata: { order: "A-17" }, error: null });
    // The job's result is what the synchronous endpoint answers for the same (greedy) request.
    const { webhook: _webhook, metadata: _metadata, ...generation } = body as typeof body & { metadata: unknown };
    const sync = (await (await post("/v1/chat/completions", generation)).json()) as NonNullable<Delivered["data"]["result"]>;
    const result = payload.data.result!;
    expect(result.object).toBe("chat.completion");
    expect(result.choices[0]!.message!.content).toBe(sync.choices[0]!.message!.content);
    expect(result.choices[0]!.finish_reason).toBe(sync.choices[0]!.finish_reason);
    expect(result.usage).toEqual(sync.usage);
    expect(result.usage.completion_tokens).toBeGreaterThan(0);

    // The status document: the stored result equals the delivered one; one attempt of each kind.
    expect(job.result).toEqual(result);
    expect(job.attempts.map((a) => [a.kind, a.number, a.outcome])).toEqual([
      ["generation", 1, "succeeded"],
      ["delivery", 1, "delivered"],
    ]);
    expect(deliveryAttempts(job)[0]!.http_status).toBe(200);
    expect(job.webhook.delivered_at).not.toBeNull();
    expect(Date.parse(job.finished_at!)).toBeGreaterThanOrEqual(Date.parse(job.started_at!));
    expect(Date.parse(job.started_at!)).toBeGreaterThanOrEqual(Date.parse(job.created_at));
  });

  it("runs completions jobs too (text_completion result)", async () => {
    const endpoint = await receiver.endpoint();
    const id = await submitOk({ model: MODEL, prompt: "The queue", max_tokens: 5, temperature: 0, webhook: { url: endpoint.url } });
    const job = await waitForJob(id);
    expect(job.status).toBe("succeeded");
    const [delivery] = await receiver.requests(endpoint.id);
    const payload = verifyDelivery(jobBindings.WEBHOOK_SIGNING_CURRENT, delivery!) as unknown as Delivered;
    expect(payload.data.kind).toBe("text_completion");
    expect(payload.data.result!.object).toBe("text_completion");
    expect(payload.data.result!.usage.completion_tokens).toBe(5);
    expect(typeof payload.data.result!.choices[0]!.text).toBe("string");
  });
});

describe("retries", () => {
  it("delivers on the 4th attempt after three 500s, with the same webhook-id and a fresh timestamp each time", async () => {
    const endpoint = await receiver.endpoint([{ status: 500 }, { status: 500 }, { status: 500 }]);
    const id = await submitOk(chatJob(endpoint.url));
    const job = await waitForJob(id);
    expect(job.status).toBe("succeeded");
    const requests = await receiver.requests(endpoint.id);
    expect(requests).toHaveLength(4);
    expect(new Set(requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([job.webhook.webhook_id]));
    expect(new Set(requests.map((r) => r.body)).size).toBe(1); // the same bytes every time
    for (const r of requests) verifyDelivery(jobBindings.WEBHOOK_SIGNING_CURRENT, r);
    for (let i = 1; i < requests.length; i++) {
      // WEBHOOK_RETRY_BASE_MS = MAX_MS = 1000: each retry waits at least the 1 s queue delay.
      expect(requests[i]!.at - requests[i - 1]!.at).toBeGreaterThanOrEqual(950);
      expect(Number(requests[i]!.headers["webhook-timestamp"])).toBeGreaterThan(Number(requests[i - 1]!.headers["webhook-timestamp"]));
    }
    const deliveries = deliveryAttempts(job);
    expect(deliveries.map((a) => [a.number, a.outcome, a.http_status])).toEqual([
      [1, "failed", 500],
      [2, "failed", 500],
      [3, "failed", 500],
      [4, "delivered", 200],
    ]);
    for (const a of deliveries.slice(0, 3)) expect(a.next_attempt_at).not.toBeNull();
  });

  it("honours Retry-After on 429 and retries a receiver that times out", async () => {
    const endpoint = await receiver.endpoint([
      { status: 429, headers: { "retry-after": "3" } },
      { status: 200, delayMs: 2_500 }, // longer than WEBHOOK_TIMEOUT_MS (1500): counts as a failure
    ]);
    const id = await submitOk(chatJob(endpoint.url));
    const job = await waitForJob(id, undefined, 25_000);
    expect(job.status).toBe("succeeded");
    const requests = await receiver.requests(endpoint.id);
    expect(requests).toHaveLength(3);
    expect(requests[1]!.at - requests[0]!.at).toBeGreaterThanOrEqual(2_950);
    const deliveries = deliveryAttempts(job);
    expect(deliveries.map((a) => a.outcome)).toEqual(["failed", "failed", "delivered"]);
    expect(deliveries[0]!.http_status).toBe(429);
    expect(Date.parse(deliveries[0]!.next_attempt_at!) - Date.parse(deliveries[0]!.started_at)).toBeGreaterThanOrEqual(3_000);
    expect(deliveries[1]!.http_status).toBeNull();
    expect(deliveries[1]!.error).toContain("no complete answer within 1500 ms");
  });

  it("reads only a bounded part of a huge response body", async () => {
    const endpoint = await receiver.endpoint([{ status: 200, bodyBytes: 8 * 1024 * 1024 }]);
    const id = await submitOk(chatJob(endpoint.url));
    const job = await waitForJob(id);
    expect(job.status).toBe("succeeded");
    const [delivery] = deliveryAttempts(job);
    expect(delivery!.outcome).toBe("delivered");
    expect(delivery!.response_excerpt).toBe("x".repeat(256));
  });

  it("stops at 410 Gone, disables the endpoint and refuses new jobs for it", async () => {
    const endpoint = await receiver.endpoint([{ status: 410 }]);
    const id = await submitOk(chatJob(endpoint.url));
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("webhook_endpoint_gone");
    expect(job.result).not.toBeNull(); // generated and kept
    // Longer than a retry delay: nothing else arrives.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await receiver.requests(endpoint.id)).toHaveLength(1);
    expect(deliveryAttempts(await getJob(id)).map((a) => [a.outcome, a.http_status])).toEqual([["gone", 410]]);
    const again = await submit(chatJob(endpoint.url));
    expect(again.status).toBe(400);
    const error = ((await again.json()) as { error: { param: string; code: string; message: string } }).error;
    expect(error).toMatchObject({ param: "webhook.url", code: "webhook_endpoint_disabled" });
    expect(error.message).toContain("410 Gone");
  });

  it("dead-letters a job whose receiver always fails; the job is failed and its result still readable", async () => {
    const endpoint = await receiver.endpoint([], { status: 503, body: "down for maintenance" });
    const id = await submitOk(chatJob(endpoint.url));
    const job = await waitForJob(id, (j) => j.webhook.dead_lettered_at !== null, 25_000);
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("webhook_delivery_failed");
    expect(await receiver.requests(endpoint.id)).toHaveLength(4); // WEBHOOK_MAX_ATTEMPTS
    expect(deliveryAttempts(job).map((a) => [a.outcome, a.http_status, a.response_excerpt])).toEqual(
      Array.from({ length: 4 }, () => ["failed", 503, "down for maintenance"]),
    );
    expect(deliveryAttempts(job)[3]!.next_attempt_at).toBeNull();
    // Nothing lost: the generated completion is still there.
    const result = job.result as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    expect(typeof result.choices[0]!.message.content).toBe("string");
    expect(result.usage.completion_tokens).toBeGreaterThan(0);
  });
});

describe("results too large to keep", () => {
  it("fails the job with result_too_large and delivers that, instead of retrying", async () => {
    const endpoint = await receiver.endpoint();
    // 600 tokens with 20 alternatives each: well over the 600,000 characters a job keeps.
    const id = await submitOk(chatJob(endpoint.url, { max_tokens: 600, logprobs: true, top_logprobs: 20 }));
    const job = await waitForJob(id);
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("result_too_large");
    expect(job.result).toBeNull();
    const [delivery] = await receiver.requests(endpoint.id);
    const payload = verifyDelivery(jobBindings.WEBHOOK_SIGNING_CURRENT, delivery!) as unknown as Delivered;
    expect(payload.type).toBe("job.failed");
    expect(payload.data.error?.code).toBe("result_too_large");
    expect(job.attempts.filter((a) => a.kind === "generation")).toHaveLength(1);
  });
});

describe("idempotency", () => {
  it("returns the same job for the same key and body, 409 for another body, and scopes keys per API key", async () => {
    const endpoint = await receiver.endpoint();
    const key = `idem-${crypto.randomUUID()}`;
    const body = chatJob(endpoint.url, { metadata: { n: "1" } });
    const first = await submit(body, { headers: { "idempotency-key": key } });
    expect(first.status).toBe(202);
    const { id } = (await first.json()) as { id: string };
    // The same request written differently (key order, whitespace) is the same request.
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(body).reverse()), null, 2);
    const second = await submit(reordered, { headers: { "idempotency-key": key } });
    expect(second.status).toBe(202);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(((await second.json()) as { id: string }).id).toBe(id);

    const conflict = await submit({ ...body, max_tokens: 7 }, { headers: { "idempotency-key": key } });
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as { error: { code: string } }).error.code).toBe("idempotency_key_reused");

    // Another API key using the same Idempotency-Key gets its own job.
    const otherKey = "sk-test-other-fedcba9876543210";
    const env = { API_KEY_HASHES: `${API_KEY_HASH},${await sha256Hex(otherKey)}` };
    const other = await submit(body, { headers: { "idempotency-key": key }, key: otherKey, env });
    expect(other.status).toBe(202);
    const otherId = ((await other.json()) as { id: string }).id;
    expect(otherId).not.toBe(id);
    // …and cannot read the first key's job.
    const peek = await edge(`/v1/jobs/${id}`, { headers: { authorization: `Bearer ${otherKey}` } }, env);
    expect(peek.status).toBe(404);

    await waitForJob(id);
    await waitFor(async () => ((await receiver.requests(endpoint.id)).length >= 2 ? true : undefined), 20_000, "both deliveries");
    const ids = (await receiver.requests(endpoint.id)).map((r) => r.headers["webhook-id"]);
    expect(ids.sort()).toEqual([(await getJob(id)).webhook.webhook_id, `msg_${otherId.slice(4)}`].sort());
  });
});

describe("the submit boundary", () => {
  const expect400 = async (res: Response, param: string | null, part: string) => {
    const body = (await res.json()) as { error: { param: string | null; message: string } };
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(body.error.param).toBe(param);
    expect(body.error.message).toContain(part);
  };

  it("names the field at fault", async () => {
    const url = `${jobBindings.RECEIVER_URL}/hook/unused`;
    const { webhook: _w, ...noWebhook } = chatJob(url);
    await expect400(await submit(noWebhook), "webhook", "webhook");
    await expect400(await submit(chatJob(url, { stream: true })), "stream", "leave stream out");
    await expect400(await submit({ ...chatJob(url), prompt: "x" }), "prompt", "not both");
    await expect400(await submit({ model: MODEL, webhook: { url } }), "messages", "is required");
    await expect400(await submit(chatJob(url, { metadata: { k: 5 } })), "metadata.k", "metadata.k");
    await expect400(await submit(chatJob(url, { temperature: "hot" })), "temperature", "temperature");
    await expect400(await submit(chatJob(url, { webhook: { url, secret_id: "nope" } })), "webhook.secret_id", "no signing key");
    await expect400(await submit(chatJob(url, { webhook: { url, extra: 1 } })), "webhook.extra", "webhook.extra");
    await expect400(await submit(chatJob(url), { headers: { "idempotency-key": "has space" } }), "idempotency-key", "Idempotency-Key");
    expect((await submit({ ...chatJob(url), model: "gpt-9" })).status).toBe(404);
  });

  it("names the variable when the job settings are wrong (500), while chat keeps working", async () => {
    const env = { WEBHOOK_MAX_ATTEMPTS: "0" };
    const res = await submit(chatJob(`${jobBindings.RECEIVER_URL}/hook/unused`), { env });
    expect(res.status).toBe(500);
    const error = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("jobs_misconfigured");
    expect(error.message).toContain("WEBHOOK_MAX_ATTEMPTS");
    const { webhook: _w, ...chat } = chatJob("unused");
    expect((await post("/v1/chat/completions", chat, { env })).status).toBe(200);
  });

  it("wants an API key, and hides other keys' and unknown jobs", async () => {
    expect((await submit(chatJob(`${jobBindings.RECEIVER_URL}/hook/unused`), { key: null })).status).toBe(401);
    expect((await edge("/v1/jobs/job_00000000000000000000000000000000", { headers: { authorization: `Bearer ${API_KEY}` } })).status).toBe(404);
    expect((await edge("/v1/jobs/not-a-job", { headers: { authorization: `Bearer ${API_KEY}` } })).status).toBe(404);
    expect((await edge("/v1/jobs", { headers: { authorization: `Bearer ${API_KEY}` } })).status).toBe(405);
  });

  it("refuses callback URLs that could reach private networks (SSRF) with a 400 on webhook.url", async () => {
    const production = { WEBHOOK_DEV_MODE: "false" };
    const refused: [string, string][] = [
      [`${jobBindings.RECEIVER_URL}/hook/x`, "loopback"], // fine in development mode, not in production
      ["http://example.com/hook", "must use https"],
      ["https://user:secret@example.com/hook", "credentials"],
      ["https://2130706433/hook", "loopback"], // 127.0.0.1 as a decimal
      ["https://0177.0.0.1/hook", "loopback"], // octal
      ["https://0x7f.1/hook", "loopback"], // hexadecimal, short form
      ["https://[::ffff:127.0.0.1]/hook", "IPv4 address embedded in IPv6"],
      ["https://[::1]/hook", "loopback"],
      ["https://169.254.169.254/latest/meta-data/", "link-local"],
      ["https://metadata.google.internal/computeMetadata/v1/", ".internal"],
      ["https://[fd00:ec2::254]/latest/meta-data/", "unique-local"],
      ["https://10.1.2.3/hook", "private network"],
      ["https://192.168.0.10/hook", "private network"],
      ["https://[::ffff:a9fe:a9fe]/", "link-local"],
      ["https://localhost/hook", "loopback"],
      ["https://intranet/hook", "single-label"],
      ["ftp://example.com/hook", "must use https"],
      ["not a url", "not an absolute URL"],
    ];
    for (const [url, reason] of refused) {
      const res = await submit(chatJob(url), { env: production });
      const body = (await res.json()) as { error: { param: string; code: string; message: string } };
      expect(res.status, `${url}: ${JSON.stringify(body)}`).toBe(400);
      expect(body.error.param).toBe("webhook.url");
      expect(body.error.code).toBe("invalid_webhook_url");
      expect(body.error.message, url).toContain(reason);
    }
    // Development mode admits loopback, over http, and nothing private.
    const dev = await submit(chatJob("http://10.0.0.1/hook"));
    expect(dev.status).toBe(400);
  });
});
