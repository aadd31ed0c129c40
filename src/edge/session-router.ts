/// <reference types="@cloudflare/workers-types" />
/**
 * Durable Object, one per session key: remembers which GPU worker holds the session's KV cache. A session
 * stays on its worker for as long as that worker is among the ready ones, however loaded it is (moving would
 * throw the cache away), and moves only when the worker is gone (unreachable, failing, not ready, or removed
 * from the pool). The token stream itself never passes through the object: the gateway asks it for a worker
 * (one short RPC) and talks to the worker directly, so a busy session does not serialize its tokens here.
 *
 * Idle sessions are forgotten after the TTL by an alarm, so storage does not grow without bound.
 */
import { DurableObject } from "cloudflare:workers";

export interface SessionPlacement {
  worker: string | null;
  /** How many times the session changed workers. */
  moves: number;
  lastUsed: number;
}

const KEY = "placement";

export class SessionRouter extends DurableObject {
  private async load(): Promise<SessionPlacement> {
    return (await this.ctx.storage.get<SessionPlacement>(KEY)) ?? { worker: null, moves: 0, lastUsed: 0 };
  }

  private async save(placement: SessionPlacement, ttlS: number): Promise<void> {
    await this.ctx.storage.put(KEY, placement);
    await this.ctx.storage.setAlarm(placement.lastUsed + ttlS * 1000);
  }

  /** The session's worker if it is among `candidates`; otherwise moves the session to `candidates[0]`. */
  async place(candidates: string[], ttlS: number): Promise<string> {
    if (candidates.length === 0) throw new Error("place: no candidate workers");
    const placement = await this.load();
    const now = Date.now();
    if (placement.worker !== null && candidates.includes(placement.worker)) {
      // Refresh the idle timer at most every tenth of the TTL: one storage write per many requests.
      if (now - placement.lastUsed > (ttlS * 1000) / 10) await this.save({ ...placement, lastUsed: now }, ttlS);
      return placement.worker;
    }
    const worker = candidates[0]!;
    await this.save({ worker, moves: placement.worker === null ? 0 : placement.moves + 1, lastUsed: now }, ttlS);
    return worker;
  }

  /** Records a move decided by the gateway (failover before the first token). */
  async record(worker: string, ttlS: number): Promise<void> {
    const placement = await this.load();
    if (placement.worker === worker) return;
    await this.save({ worker, moves: placement.worker === null ? 0 : placement.moves + 1, lastUsed: Date.now() }, ttlS);
  }

  /** Where the session is (for inspection and tests). */
  async placement(): Promise<SessionPlacement> {
    return this.load();
  }

  override async alarm(): Promise<void> {
    const placement = await this.ctx.storage.get<SessionPlacement>(KEY);
    if (placement === undefined) return;
    // The alarm is re-armed on every save, so firing means the session was idle for the whole TTL.
    await this.ctx.storage.deleteAll();
  }
}
