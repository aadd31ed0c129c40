/// <reference types="@cloudflare/workers-types" />
/// <reference types="@cloudflare/vitest-plugin/types" />
/**
 * Helpers for the Workers tests: call the real Worker entry (src/edge/worker.ts) with the wrangler.toml
 * bindings (Durable Objects, KV, rate limiters) and per-test variable overrides, read SSE/NDJSON bodies, and
 * drive extra GPU worker processes through the Node-side supervisor (test/edge/global-setup.ts).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { signWorkerRequest, parseNdjsonStream, type WorkerEvent, type GenerateRequestInput } from "../../src/protocol/index.js";
import worker, { type Env } from "../../src/edge/worker.js";
import { sha256Hex } from "../../src/edge/auth.js";

export interface TestBindings extends Env {
  SUPERVISOR_URL: string;
  GOLDEN_VECTORS: string;
  WORKER_SECRET: string;
  GPU_WORKERS: string;
  TIGHT_RATE_LIMITER: RateLimit;
  API_KEYS: KVNamespace;
}

export const bindings = env as unknown as TestBindings;

/** The key most tests authenticate with; its SHA-256 is passed in API_KEY_HASHES (keys are stored hashed). */
export const API_KEY = "sk-test-edge-0123456789abcdef";
export const API_KEY_HASH = await sha256Hex(API_KEY);

export type Overrides = Partial<Record<string, unknown>>;

/** Runs one request through the Worker's fetch handler, waiting for the background work it started. */
export async function edge(path: string, init: RequestInit = {}, overrides: Overrides = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const request = new Request(`http://edge.test${path}`, init);
  const response = await worker.fetch(request, { ...bindings, API_KEY_HASHES: API_KEY_HASH, ...overrides } as Env, ctx);
  // Background work started so far (log lines, pool refreshes) finishes before the test looks at it.
  await waitOnExecutionContext(ctx);
  return response;
}

export function jsonInit(body: unknown, headers: Record<string, string> = {}, key: string | null = API_KEY): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

export function post(path: string, body: unknown, options: { headers?: Record<string, string>; key?: string | null; env?: Overrides } = {}) {
  return edge(path, jsonInit(body, options.headers, options.key === undefined ? API_KEY : options.key), options.env);
}

export interface Sse {
  /** Parsed `data:` payloads (JSON objects, or the raw string such as "[DONE]"). */
  data: unknown[];
  /** Comment lines (keep-alives), in order, with their position among the data events. */
  comments: { text: string; beforeData: number }[];
}

export async function readSse(response: Response): Promise<Sse> {
  const text = await response.text();
  const out: Sse = { data: [], comments: [] };
  for (const block of text.split("\n\n")) {
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) out.comments.push({ text: line.slice(1).trim(), beforeData: out.data.length });
      else if (line.startsWith("data: ")) {
        const payload = line.slice(6);
        out.data.push(payload === "[DONE]" ? payload : JSON.parse(payload));
      }
    }
  }
  return out;
}

export async function readNdjson(response: Response): Promise<Record<string, unknown>[]> {
  const text = new TextDecoder().decode(await response.arrayBuffer());
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export const sharedWorkers = (): string[] => bindings.GPU_WORKERS.split(",");

/** Extra GPU workers for tests that kill or pause them (never the shared ones). */
export const supervisor = {
  async spawn(env: Record<string, string> = {}): Promise<{ id: string; url: string }> {
    const res = await fetch(`${bindings.SUPERVISOR_URL}/workers`, { method: "POST", body: JSON.stringify({ env }) });
    if (!res.ok) throw new Error(`supervisor: ${await res.text()}`);
    return res.json();
  },
  async act(id: string, action: "kill" | "pause" | "resume"): Promise<void> {
    const res = await fetch(`${bindings.SUPERVISOR_URL}/workers/${id}/${action}`, { method: "POST" });
    if (!res.ok) throw new Error(`supervisor: ${await res.text()}`);
    await res.body?.cancel();
  },
};

/** The same generation asked of a GPU worker directly (signed), as the independent reference for the edge. */
export async function generateDirect(url: string, request: GenerateRequestInput): Promise<{ tokens: number[]; events: WorkerEvent[] }> {
  const body = JSON.stringify(request);
  const headers = await signWorkerRequest(bindings.WORKER_SECRET, { method: "POST", path: "/v1/generate", body });
  const res = await fetch(`${url}/v1/generate`, { method: "POST", body, headers: { ...headers, "content-type": "application/json" } });
  if (!res.ok) throw new Error(`direct generate: ${res.status} ${await res.text()}`);
  const events: WorkerEvent[] = [];
  for await (const e of parseNdjsonStream(res.body!)) events.push(e);
  return { tokens: events.flatMap((e) => (e.type === "token" ? [e.id] : [])), events };
}

/** Golden vectors from ../shared (Meta's reference outputs), or null when ../shared is absent. */
export function golden(): Record<string, unknown> | null {
  return bindings.GOLDEN_VECTORS ? (JSON.parse(bindings.GOLDEN_VECTORS) as Record<string, unknown>) : null;
}
