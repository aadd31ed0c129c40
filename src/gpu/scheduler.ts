/**
 * Bounded, fair admission to the model. onnxruntime-node runs each `session.run` synchronously on the JS
 * thread, so two generations on one model only interleave and together go no faster than one (runtime notes
 * §1.4): the scheduler lets `concurrency` (1) generations run and queues the rest.
 *
 * Fairness: waiting requests are grouped by a key (the session id, or the request id for session-less
 * requests) and served round-robin across keys, so a client that queues many requests on one session cannot
 * starve the others; within a key, order is first come, first served.
 */

export interface Lease {
  /** Frees the slot; idempotent. */
  release(): void;
}

interface Waiter {
  key: string;
  grant: (lease: Lease) => void;
  reject: (reason: unknown) => void;
  onAbort?: () => void;
  signal?: AbortSignal;
}

export type EnqueueResult = { ok: true; lease: Promise<Lease> } | { ok: false; reason: "full" | "closed" };

export class FairScheduler {
  /** Key → its waiters in arrival order; Map order is the round-robin order of keys. */
  private readonly queues = new Map<string, Waiter[]>();
  private waiting = 0;
  private active = 0;
  private closed = false;
  private idleResolvers: (() => void)[] = [];

  constructor(
    readonly capacity: number,
    readonly concurrency = 1,
  ) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`FairScheduler: bad capacity ${capacity}`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`FairScheduler: bad concurrency ${concurrency}`);
  }

  get queueDepth(): number {
    return this.waiting;
  }

  get running(): number {
    return this.active;
  }

  get isFull(): boolean {
    return this.active >= this.concurrency && this.waiting >= this.capacity;
  }

  /**
   * Asks for a slot. Refused at once when the queue is full or closed. The lease promise rejects with
   * `signal.reason` if the signal aborts while waiting (the waiter then leaves the queue).
   */
  enqueue(key: string, signal?: AbortSignal): EnqueueResult {
    if (this.closed) return { ok: false, reason: "closed" };
    if (this.active < this.concurrency && this.waiting === 0) {
      this.active++;
      return { ok: true, lease: Promise.resolve(this.newLease()) };
    }
    if (this.waiting >= this.capacity) return { ok: false, reason: "full" };
    const lease = new Promise<Lease>((grant, reject) => {
      const waiter: Waiter = { key, grant, reject };
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        waiter.signal = signal;
        waiter.onAbort = () => {
          this.remove(waiter);
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      const list = this.queues.get(key);
      if (list) list.push(waiter);
      else this.queues.set(key, [waiter]);
      this.waiting++;
    });
    return { ok: true, lease };
  }

  /** Stops admitting new requests; queued ones are rejected with `reason`. Running ones continue. */
  close(reason: unknown): void {
    this.closed = true;
    for (const list of this.queues.values()) {
      for (const w of list) {
        this.detach(w);
        w.reject(reason);
      }
    }
    this.queues.clear();
    this.waiting = 0;
    this.notifyIdle();
  }

  /** Resolves when nothing is running or queued. */
  idle(): Promise<void> {
    if (this.active === 0 && this.waiting === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleResolvers.push(resolve));
  }

  private newLease(): Lease {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.dispatch();
      },
    };
  }

  private dispatch(): void {
    while (this.active < this.concurrency && this.waiting > 0) {
      // The first key in Map order is the one served longest ago; after serving it, it moves to the back.
      const [key, list] = this.queues.entries().next().value as [string, Waiter[]];
      const waiter = list.shift()!;
      this.queues.delete(key);
      if (list.length > 0) this.queues.set(key, list);
      this.waiting--;
      this.detach(waiter);
      this.active++;
      waiter.grant(this.newLease());
    }
    this.notifyIdle();
  }

  private remove(waiter: Waiter): void {
    const list = this.queues.get(waiter.key);
    const i = list?.indexOf(waiter) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.queues.delete(waiter.key);
    this.waiting--;
    this.notifyIdle();
  }

  private detach(waiter: Waiter): void {
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener("abort", waiter.onAbort);
  }

  private notifyIdle(): void {
    if (this.active !== 0 || this.waiting !== 0) return;
    const resolvers = this.idleResolvers;
    this.idleResolvers = [];
    for (const r of resolvers) r();
  }
}
