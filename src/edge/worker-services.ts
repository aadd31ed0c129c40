/// <reference types="@cloudflare/workers-types" />
/**
 * The Worker's bindings as the gateway's services: KV for API keys, the rate-limit binding, the
 * `SessionRouter` Durable Object for session placement, and the bundled tokenizer asset (a Data module,
 * wrapped on first use, never at module scope, so start-up stays within the 1 s budget).
 */
import tokenizerAsset from "../../build/llama3-tokenizer.bin";
import { Tokenizer } from "../llama/tokenizer.js";
import { z } from "zod";
import { KV_KEY_PREFIX, type ApiKeyRecord, type KeyStore, type RateLimiter } from "./auth.js";
import { parseEdgeConfig, type EdgeConfig, type EdgeVars } from "./config.js";
import type { SessionDirectory } from "./generation.js";
import { GpuPool } from "./pool.js";
import type { EdgeServices } from "./services.js";
import type { SessionRouter } from "./session-router.js";
import { workerJobRuntime, type JobBindings } from "./jobs/worker-runtime.js";

export interface Env extends EdgeVars, JobBindings {
  SESSIONS: DurableObjectNamespace<SessionRouter>;
  API_KEYS?: KVNamespace;
  RATE_LIMITER?: RateLimit;
}

let tokenizer: Tokenizer | undefined;

/** The Llama 3 tokenizer over the bundled asset; O(1) to build (typed-array views), kept per isolate. */
export function bundledTokenizer(): Tokenizer {
  tokenizer ??= Tokenizer.fromData(tokenizerAsset);
  return tokenizer;
}

const configs = new WeakMap<object, EdgeConfig>();

export function configFor(env: Env): EdgeConfig {
  let config = configs.get(env);
  if (config === undefined) {
    config = parseEdgeConfig(env);
    configs.set(env, config);
  }
  return config;
}

const keyRecordSchema = z.object({ name: z.string().optional(), disabled: z.boolean().optional() });

class KvKeyStore implements KeyStore {
  constructor(
    private readonly kv: KVNamespace,
    private readonly log: (fields: Record<string, unknown>) => void,
  ) {}

  async lookup(keyHash: string): Promise<ApiKeyRecord | null> {
    const value = await this.kv.get(`${KV_KEY_PREFIX}${keyHash}`, { type: "json", cacheTtl: 60 });
    if (value === null) return null;
    const parsed = keyRecordSchema.safeParse(value);
    if (!parsed.success) {
      this.log({ event: "malformed_key_record", key_id: keyHash.slice(0, 12) });
      return null;
    }
    return parsed.data;
  }
}

class BindingRateLimiter implements RateLimiter {
  constructor(private readonly binding: RateLimit) {}
  async allow(key: string): Promise<boolean> {
    return (await this.binding.limit({ key })).success;
  }
}

class DurableSessionDirectory implements SessionDirectory {
  constructor(
    private readonly namespace: DurableObjectNamespace<SessionRouter>,
    private readonly ttlS: number,
  ) {}
  private stub(sessionKey: string) {
    return this.namespace.get(this.namespace.idFromName(sessionKey));
  }
  place(sessionKey: string, candidates: readonly string[]): Promise<string> {
    return this.stub(sessionKey).place([...candidates], this.ttlS);
  }
  record(sessionKey: string, worker: string): Promise<void> {
    return this.stub(sessionKey).record(worker, this.ttlS);
  }
}

function log(fields: Record<string, unknown>): void {
  console.log(JSON.stringify(fields));
}

export function workerServices(env: Env, ctx: ExecutionContext): EdgeServices {
  const config = configFor(env);
  return {
    config,
    tokenizer: bundledTokenizer,
    pool: new GpuPool(config),
    sessions: env.SESSIONS ? new DurableSessionDirectory(env.SESSIONS, config.sessionTtlS) : null,
    keys: env.API_KEYS ? new KvKeyStore(env.API_KEYS, log) : null,
    limiter: env.RATE_LIMITER ? new BindingRateLimiter(env.RATE_LIMITER) : null,
    waitUntil: (promise) => ctx.waitUntil(promise.catch(() => undefined)),
    log,
    jobs: workerJobRuntime(env),
  };
}
