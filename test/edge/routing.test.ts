/**
 * Routing across real GPU worker processes, in workerd: least-loaded choice, sticky sessions recorded in the
 * SessionRouter Durable Object (proved by the worker's KV-cache reuse), failover before the first token when
 * a worker is killed or stuck, and error events when a worker dies or stalls mid-stream. The processes are
 * this file's own (started and killed through the supervisor); the shared ones are only used where nothing
 * is killed.
 */
/// <reference types="@cloudflare/workers-types" />
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionKeyFor } from "../../src/edge/run.js";
import type { SessionPlacement } from "../../src/edge/session-router.js";
import { signWorkerRequest } from "../../src/protocol/index.js";
import { API_KEY, API_KEY_HASH, bindings, edge, post, sharedWorkers, supervisor } from "./helpers.js";

const MODEL = "meta-llama/Llama-3.1-8B-Instruct";

interface ChatBody {
  choices: { message: { content: string }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

async function placement(sessionId: string): Promise<SessionPlacement> {
  const key = await sessionKeyFor(API_KEY_HASH, sessionId);
  return bindings.SESSIONS.get(bindings.SESSIONS.idFromName(key)).placement();
}

function turn(sessionId: string, conversation: unknown[], env: Record<string, unknown>, maxTokens = 4) {
  return post("/v1/chat/completions", { model: MODEL, messages: conversation, max_tokens: maxTokens, temperature: 0 }, { headers: { "x-session-id": sessionId }, env });
}

/** SSE `data:` payloads as they arrive, so a test can act between them. */
async function* sseData(response: Response): AsyncGenerator<unknown> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (block.startsWith("data: ")) yield block.slice(6) === "[DONE]" ? "[DONE]" : JSON.parse(block.slice(6));
    }
  }
}

let own: { id: string; url: string }[] = [];
beforeAll(async () => {
  own = await Promise.all([supervisor.spawn(), supervisor.spawn(), supervisor.spawn()]);
});
afterAll(async () => {
  for (const w of own) await supervisor.act(w.id, "resume").catch(() => undefined);
});

describe("load and stickiness", () => {
  it("sends a new request to the less loaded worker", async () => {
    const [a, b] = own;
    const blocker = post("/v1/completions", { model: MODEL, prompt: "Once upon a time", max_tokens: 150, temperature: 0 }, { env: { GPU_WORKERS: a!.url } });
    let blockerDone = false;
    void blocker.then(() => (blockerDone = true));
    await new Promise((r) => setTimeout(r, 200));
    const quick = await post("/v1/completions", { model: MODEL, prompt: "Hi", max_tokens: 2 }, { env: { GPU_WORKERS: `${a!.url},${b!.url}` } });
    expect(quick.status).toBe(200);
    // Answered while the blocker still held worker a: it went to b, not into a's queue.
    expect(blockerDone).toBe(false);
    expect((await blocker).status).toBe(200);
  });

  it("keeps a conversation on the worker holding its KV cache, even when another is idle", async () => {
    const env = { GPU_WORKERS: sharedWorkers().join(",") };
    const session = `conv-${crypto.randomUUID()}`;
    let conversation: { role: string; content: string }[] = [{ role: "user", content: "Tell me a story about a lighthouse." }];
    const first = (await (await turn(session, conversation, env)).json()) as ChatBody;
    const placed = await placement(session);
    expect(sharedWorkers()).toContain(placed.worker);
    for (let i = 0; i < 3; i++) {
      // Load the session's worker: a stateless request would now go to the other one.
      const blocker = post("/v1/completions", { model: MODEL, prompt: "Load", max_tokens: 40, temperature: 0 }, { env: { GPU_WORKERS: placed.worker! } });
      await new Promise((r) => setTimeout(r, 100));
      conversation = [...conversation, { role: "assistant", content: i === 0 ? first.choices[0]!.message.content : "ok" }, { role: "user", content: `And then? (${i})` }];
      const res = await turn(session, conversation, env);
      const body = (await res.json()) as ChatBody;
      expect(res.status, JSON.stringify(body)).toBe(200);
      // The worker reused the cached prefix of the previous turn: the same worker served it.
      expect(body.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(10);
      await blocker;
    }
    const after = await placement(session);
    expect(after.worker).toBe(placed.worker);
    expect(after.moves).toBe(0);
  });

  it("separates sessions of different API keys", async () => {
    const other = await sessionKeyFor("another-key-hash", "same-id");
    expect(other).not.toBe(await sessionKeyFor(API_KEY_HASH, "same-id"));
  });
});

describe("failover before the first token", () => {
  it("moves a session off a killed worker and answers without an error", async () => {
    const [a, b] = own;
    const env = { GPU_WORKERS: `${a!.url},${b!.url}` };
    const session = `conv-${crypto.randomUUID()}`;
    const conversation = [{ role: "user", content: "Hello there" }];
    expect((await turn(session, conversation, env)).status).toBe(200);
    const before = await placement(session);
    const victim = own.find((w) => w.url === before.worker)!;
    await supervisor.act(victim.id, "kill");
    const res = await turn(session, [...conversation, { role: "assistant", content: "Hi" }, { role: "user", content: "Still there?" }], env);
    expect(res.status, await res.clone().text()).toBe(200);
    const after = await placement(session);
    expect(after.worker).not.toBe(victim.url);
    expect([a!.url, b!.url]).toContain(after.worker);
    expect(after.moves).toBe(1);
    // Stateless traffic keeps flowing too.
    expect((await post("/v1/completions", { model: MODEL, prompt: "x", max_tokens: 1 }, { env })).status).toBe(200);
    own = own.filter((w) => w !== victim);
  });

  it("times out a worker that accepts the connection but never answers, then fails over", async () => {
    const [survivor, stuck] = own;
    const session = `conv-${crypto.randomUUID()}`;
    const conversation = [{ role: "user", content: "Ping" }];
    expect((await turn(session, conversation, { GPU_WORKERS: stuck!.url })).status).toBe(200);
    expect((await placement(session)).worker).toBe(stuck!.url);
    const env = { GPU_WORKERS: `${stuck!.url},${survivor!.url}` };
    expect((await post("/v1/completions", { model: MODEL, prompt: "warm", max_tokens: 1 }, { env })).status).toBe(200);
    await supervisor.act(stuck!.id, "pause");
    try {
      const started = Date.now();
      const res = await turn(session, conversation, env);
      expect(res.status, await res.clone().text()).toBe(200);
      expect((await placement(session)).worker).toBe(survivor!.url);
      // Either the connect timeout (2 s in the test config) fired, or the pool's probe had already seen it.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await supervisor.act(stuck!.id, "resume");
    }
  });

  it("answers 503 when no worker can be reached", async () => {
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "x" }], max_tokens: 1 }, { env: { GPU_WORKERS: "http://127.0.0.1:9" } });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error.type).toBe("service_unavailable_error");
    expect(body.error.message).not.toContain("127.0.0.1");
    expect(res.headers.get("retry-after")).not.toBeNull();
  });
});

describe("failures after the first token", () => {
  it("stops the GPU generation when the client disconnects", async () => {
    const worker = own[0]!;
    const readyz = async () => {
      const headers = await signWorkerRequest(bindings.WORKER_SECRET, { method: "GET", path: "/readyz", body: "" });
      return (await (await fetch(`${worker.url}/readyz`, { headers })).json()) as { running: number; queue_depth: number };
    };
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Go on" }], max_tokens: 1000, temperature: 0, stream: true }, { env: { GPU_WORKERS: worker.url } });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect((await readyz()).running).toBe(1);
    await reader.cancel();
    const deadline = Date.now() + 3000;
    let status = await readyz();
    while (status.running + status.queue_depth > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      status = await readyz();
    }
    // 1000 tokens would take several seconds; the worker is idle again at once.
    expect(status.running + status.queue_depth).toBe(0);
  });

  it("ends the stream with an error event when the worker stalls", async () => {
    const worker = own[0]!;
    const res = await post("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "Go on" }], max_tokens: 400, temperature: 0, stream: true }, { env: { GPU_WORKERS: worker.url } });
    expect(res.status).toBe(200);
    const seen: unknown[] = [];
    let paused = false;
    try {
      for await (const payload of sseData(res)) {
        seen.push(payload);
        if (!paused && seen.length >= 3) {
          await supervisor.act(worker.id, "pause");
          paused = true;
        }
      }
    } finally {
      await supervisor.act(worker.id, "resume");
    }
    const last = seen.at(-1) as { error?: { message: string; code: string } };
    expect(last.error?.message).toMatch(/sent nothing for 2000 ms/);
    expect(seen).not.toContain("[DONE]");
  });

  it("ends the stream with an error the openai client raises when the worker dies", async () => {
    const worker = own[1]!;
    const client = new OpenAI({
      apiKey: API_KEY,
      baseURL: "http://edge.test/v1",
      maxRetries: 0,
      fetch: (u: string | URL | Request, init?: RequestInit) => edge(new URL(String(u)).pathname, init, { GPU_WORKERS: worker.url }),
    });
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Go on" }], max_tokens: 400, temperature: 0, stream: true });
    let chunks = 0;
    const consume = async () => {
      for await (const _chunk of stream) {
        if (++chunks === 3) await supervisor.act(worker.id, "kill");
      }
    };
    await expect(consume()).rejects.toBeInstanceOf(OpenAI.APIError);
    expect(chunks).toBeGreaterThanOrEqual(3);
    own = own.filter((w) => w !== worker);
  });
});
