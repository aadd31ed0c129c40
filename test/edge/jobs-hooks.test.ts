/**
 * Inbound hooks, in workerd: another system's signed webhook (Standard Webhooks or GitHub style) reaches
 * `POST /v1/hooks/:name`, is verified over its raw body, renders the hook's prompt template and starts a job
 * whose result goes to the hook's destination (the real receiver). Hooks are configured in
 * test/edge/jobs/receiver-setup.ts; the expected prompts below are written out by hand from those templates.
 */
import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { edge, post } from "./helpers.js";
import { jobBindings, MODEL, receiver, verifyDelivery, waitFor } from "./jobs/helpers.js";
import type { RecordedRequest } from "./jobs/receiver.js";

interface Delivered {
  data: {
    id: string;
    status: string;
    metadata: Record<string, string>;
    result: { choices: { message: { content: string }; finish_reason: string }[]; usage: Record<string, number> };
  };
}

function standardHeaders(secret: string, id: string, body: string, at = new Date()): Record<string, string> {
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  };
}

async function githubSignature(secret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body)));
  return `sha256=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const hook = (name: string, body: string, headers: Record<string, string>) => edge(`/v1/hooks/${name}`, { method: "POST", headers, body });

/** The delivery of job `id` at one of the hooks' destinations, verified with the signing key. */
async function deliveryOf(endpoint: string, id: string): Promise<{ payload: Delivered; all: RecordedRequest[] }> {
  return waitFor(async () => {
    const all = (await receiver.requests(endpoint)).filter((r) => (JSON.parse(r.body) as Delivered).data.id === id);
    return all.length > 0 ? { payload: verifyDelivery(jobBindings.WEBHOOK_SIGNING_CURRENT, all[0]!) as unknown as Delivered, all } : undefined;
  }, 20_000, `the delivery of ${id}`);
}

/** What the synchronous endpoint answers for the prompt the template should have produced. */
async function expectedAnswer(messages: { role: string; content: string }[]) {
  const res = await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 4, temperature: 0 });
  return (await res.json()) as Delivered["data"]["result"];
}

const errorOf = async (res: Response) => ((await res.json()) as { error: { message: string; code: string } }).error;

describe("Standard Webhooks hooks", () => {
  it("verifies, renders the template with the payload, and delivers the result to the hook's destination once", async () => {
    const body = JSON.stringify({ type: "order.created", order: { id: "A-17", customer: "Ada" } });
    const msgId = `msg_${crypto.randomUUID()}`;
    const res = await hook("std-summary", body, standardHeaders(jobBindings.HOOK_SECRET_STANDARD, msgId, body));
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };

    const { payload } = await deliveryOf("hooks-std", id);
    expect(payload.data.status).toBe("succeeded");
    expect(payload.data.metadata).toEqual({ hook: "std-summary", delivery_id: msgId, event: "order.created" });
    const expected = await expectedAnswer([
      { role: "system", content: "You write one-line summaries." },
      { role: "user", content: "Summarize the order A-17 for Ada." },
    ]);
    expect(payload.data.result.usage).toEqual(expected.usage);
    expect(payload.data.result.choices[0]!.message.content).toBe(expected.choices[0]!.message.content);

    // The sender retries the same message (same id and body, new timestamp): the same job, no second delivery.
    const replay = await hook("std-summary", body, standardHeaders(jobBindings.HOOK_SECRET_STANDARD, msgId, body));
    expect(replay.status).toBe(202);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(((await replay.json()) as { id: string }).id).toBe(id);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await deliveryOf("hooks-std", id)).all).toHaveLength(1);
  });

  it("answers 401 for tampered, stale, future, wrongly keyed or unsigned deliveries", async () => {
    const secret = jobBindings.HOOK_SECRET_STANDARD;
    const body = JSON.stringify({ type: "order.created", order: { id: "B-2", customer: "Bo" } });
    const id = `msg_${crypto.randomUUID()}`;
    const cases: [string, string, Record<string, string>, string][] = [
      ["tampered body", body.replace("B-2", "B-3"), standardHeaders(secret, id, body), "does not match"],
      ["10 minutes old", body, standardHeaders(secret, id, body, new Date(Date.now() - 600_000)), "replay window"],
      // Older than this hook's 120 s window although within the package's fixed 5 minutes.
      ["150 s old", body, standardHeaders(secret, id, body, new Date(Date.now() - 150_000)), "replay window"],
      ["10 minutes ahead", body, standardHeaders(secret, id, body, new Date(Date.now() + 600_000)), "in the future"],
      ["another secret", body, standardHeaders(jobBindings.WEBHOOK_SIGNING_CURRENT, id, body), "does not match"],
      ["another message id", body, { ...standardHeaders(secret, id, body), "webhook-id": `${id}x` }, "does not match"],
      ["no signature", body, { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(Date.now() / 1000)) }, "missing"],
    ];
    for (const [what, sent, headers, reason] of cases) {
      const res = await hook("std-summary", sent, headers);
      expect(res.status, what).toBe(401);
      const error = await errorOf(res);
      expect(error.code, what).toBe("invalid_signature");
      expect(error.message, what).toContain(reason);
    }
  });

  it("answers 404 for an unknown hook and needs no API key", async () => {
    const body = "{}";
    const res = await hook("no-such-hook", body, standardHeaders(jobBindings.HOOK_SECRET_STANDARD, "msg_1", body));
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe("hook_not_found");
  });
});

describe("GitHub hooks", () => {
  const push = JSON.stringify({ ref: "refs/heads/main", repository: { full_name: "acme/app" }, head_commit: { message: "Fix the queue" } });

  it("verifies X-Hub-Signature-256 over the raw body and delivers the rendered job's result", async () => {
    const delivery = crypto.randomUUID();
    const res = await hook("gh-push", push, {
      "content-type": "application/json",
      "x-hub-signature-256": await githubSignature(jobBindings.HOOK_SECRET_GITHUB, push),
      "x-github-delivery": delivery,
      "x-github-event": "push",
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const { payload } = await deliveryOf("hooks-gh", id);
    expect(payload.data.metadata).toEqual({ hook: "gh-push", delivery_id: delivery, event: "push" });
    const expected = await expectedAnswer([{ role: "user", content: "Describe the push to acme/app: Fix the queue" }]);
    expect(payload.data.result.usage).toEqual(expected.usage);
    expect(payload.data.result.choices[0]!.message.content).toBe(expected.choices[0]!.message.content);
  });

  it("refuses a bad, malformed or missing signature (401) and a delivery without its id (400)", async () => {
    const good = await githubSignature(jobBindings.HOOK_SECRET_GITHUB, push);
    const base = { "content-type": "application/json", "x-github-delivery": crypto.randomUUID(), "x-github-event": "push" };
    const tampered = await hook("gh-push", push.replace("main", "evil"), { ...base, "x-hub-signature-256": good });
    expect(tampered.status).toBe(401);
    expect((await errorOf(tampered)).message).toContain("does not match");
    const wrongKey = await hook("gh-push", push, { ...base, "x-hub-signature-256": await githubSignature("not-the-secret", push) });
    expect(wrongKey.status).toBe(401);
    const malformed = await hook("gh-push", push, { ...base, "x-hub-signature-256": good.replace("sha256=", "sha1=") });
    expect(malformed.status).toBe(401);
    expect((await errorOf(malformed)).message).toContain("sha256=");
    const unsigned = await hook("gh-push", push, base);
    expect(unsigned.status).toBe(401);
    const { "x-github-delivery": _, ...noDelivery } = base;
    const anonymous = await hook("gh-push", push, { ...noDelivery, "x-hub-signature-256": good });
    expect(anonymous.status).toBe(400);
  });
});
