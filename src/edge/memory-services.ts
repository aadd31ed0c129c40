/**
 * In-memory services for running the gateway in a plain Node (or any JS) process: keys from a list of
 * digests, sessions in a Map, no rate limit. Used by the edge benchmark to measure the gateway's own CPU time
 * outside workerd, and usable by anyone mounting `functions/` in Node. Single-process only: the Worker keeps
 * this state in KV and Durable Objects.
 */
import type { Tokenizer } from "../llama/tokenizer.js";
import type { KeyStore, RateLimiter } from "./auth.js";
import type { EdgeConfig } from "./config.js";
import type { SessionDirectory } from "./generation.js";
import { GpuPool, type WorkerState } from "./pool.js";
import type { EdgeServices } from "./services.js";

export class MemorySessionDirectory implements SessionDirectory {
  private readonly workers = new Map<string, string>();
  async place(sessionKey: string, candidates: readonly string[]): Promise<string> {
    const current = this.workers.get(sessionKey);
    if (current !== undefined && candidates.includes(current)) return current;
    this.workers.set(sessionKey, candidates[0]!);
    return candidates[0]!;
  }
  async record(sessionKey: string, worker: string): Promise<void> {
    this.workers.set(sessionKey, worker);
  }
}

export interface MemoryServicesOptions {
  config: EdgeConfig;
  tokenizer: Tokenizer;
  keys?: KeyStore | null;
  limiter?: RateLimiter | null;
  log?: (fields: Record<string, unknown>) => void;
}

/** Services for one process; pending background work is collected in `pending`. */
export function memoryServices(options: MemoryServicesOptions): EdgeServices & { pending: Set<Promise<unknown>> } {
  const pending = new Set<Promise<unknown>>();
  const poolState = new Map<string, WorkerState>();
  const sessions = new MemorySessionDirectory();
  return {
    config: options.config,
    tokenizer: () => options.tokenizer,
    pool: new GpuPool(options.config, poolState),
    sessions,
    keys: options.keys ?? null,
    limiter: options.limiter ?? null,
    waitUntil: (promise) => {
      const p = promise.catch(() => undefined).finally(() => pending.delete(p));
      pending.add(p);
    },
    log: options.log ?? (() => undefined),
    pending,
  };
}
