/**
 * What a request handler needs from its runtime, as plain interfaces: the Worker builds these from its
 * bindings (worker-services.ts), and a Node process can build them from in-memory stores, so the handlers in
 * `functions/` run unchanged in both.
 */
import type { Tokenizer } from "../llama/tokenizer.js";
import type { KeyStore, Principal, RateLimiter } from "./auth.js";
import type { EdgeConfig } from "./config.js";
import type { GenerationDeps, SessionDirectory, WaitUntil } from "./generation.js";
import type { GpuPool } from "./pool.js";
import type { JobRuntime } from "./jobs/runtime.js";

export interface EdgeServices extends GenerationDeps {
  config: EdgeConfig;
  /** The Llama 3 tokenizer, built on first use (never at module scope: it would count against start-up). */
  tokenizer(): Tokenizer;
  pool: GpuPool;
  sessions: SessionDirectory | null;
  keys: KeyStore | null;
  limiter: RateLimiter | null;
  waitUntil: WaitUntil;
  /** One structured log line. Never pass API keys or prompts. */
  log(fields: Record<string, unknown>): void;
  /** The job machinery behind `/v1/jobs` and `/v1/hooks/*` (webhook-driven generation), when deployed. */
  jobs?: JobRuntime;
}

/** Per-request context handed to the handlers in `functions/` once the gateway has authenticated the caller. */
export interface RequestContext {
  services: EdgeServices;
  principal: Principal;
  /** Also the GPU request id and the `x-request-id` response header. */
  requestId: string;
  /**
   * The caller's rate-limit verdict, when the gateway checks it while the handler already parses and
   * tokenizes: resolves when the caller may proceed, rejects with the 429. Anything with an effect beyond
   * this request (a GPU generation) must await it first; absent means already admitted.
   */
  admission?: Promise<void>;
}

export type EdgeHandler = (request: Request, context: RequestContext) => Promise<Response>;

export function newRequestId(): string {
  return `req_${crypto.randomUUID().replaceAll("-", "")}`;
}
