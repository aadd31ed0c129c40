import { describe, expect, it } from "vitest";
import { FairScheduler, type Lease } from "../../src/gpu/scheduler.js";

async function granted(result: ReturnType<FairScheduler["enqueue"]>): Promise<Lease> {
  if (!result.ok) throw new Error(`refused: ${result.reason}`);
  return result.lease;
}

describe("FairScheduler", () => {
  it("runs one at a time and refuses beyond the queue capacity", async () => {
    const s = new FairScheduler(2, 1);
    const first = await granted(s.enqueue("a"));
    expect(s.running).toBe(1);
    const second = s.enqueue("b");
    const third = s.enqueue("c");
    expect(second.ok && third.ok).toBe(true);
    expect(s.queueDepth).toBe(2);
    expect(s.isFull).toBe(true);
    expect(s.enqueue("d")).toEqual({ ok: false, reason: "full" });
    first.release();
    first.release(); // idempotent: must not free a second slot
    expect(s.running).toBe(1);
    expect(s.queueDepth).toBe(1);
    (await granted(second)).release();
    (await granted(third)).release();
    expect(s.running).toBe(0);
  });

  it("serves keys round-robin, each key in arrival order", async () => {
    const s = new FairScheduler(10, 1);
    const blocker = await granted(s.enqueue("x"));
    const order: string[] = [];
    const arrivals = ["a1", "a2", "a3", "b1", "c1", "b2"];
    const done = arrivals.map(async (name) => {
      const lease = await granted(s.enqueue(name[0]!));
      order.push(name);
      lease.release();
    });
    blocker.release();
    await Promise.all(done);
    // Key a arrived first; after each grant its key moves to the back of the rotation.
    expect(order).toEqual(["a1", "b1", "c1", "a2", "b2", "a3"]);
  });

  it("removes a waiter whose signal aborts and rejects with the reason", async () => {
    const s = new FairScheduler(4, 1);
    const blocker = await granted(s.enqueue("x"));
    const controller = new AbortController();
    const waiting = s.enqueue("y", controller.signal);
    expect(s.queueDepth).toBe(1);
    controller.abort({ code: "cancelled" });
    await expect(waiting.ok && waiting.lease).rejects.toEqual({ code: "cancelled" });
    expect(s.queueDepth).toBe(0);
    blocker.release();
    expect(s.running).toBe(0);
  });

  it("close() rejects queued waiters, refuses new ones, and idle() waits for running ones", async () => {
    const s = new FairScheduler(4, 1);
    const running = await granted(s.enqueue("x"));
    const queued = s.enqueue("y");
    s.close("bye");
    await expect(queued.ok && queued.lease).rejects.toBe("bye");
    expect(s.enqueue("z")).toEqual({ ok: false, reason: "closed" });
    let idle = false;
    const idlePromise = s.idle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    running.release();
    await idlePromise;
    expect(idle).toBe(true);
  });
});
