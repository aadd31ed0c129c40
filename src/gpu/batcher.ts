/**
 * Merges the decode steps of generations running side by side (MAX_RUNNING > 1) into batched forward passes.
 *
 * Generations in their decode phase `join` the batcher and ask for their next logits with `decode`. A step
 * runs once every joined generation has asked (they all sample, emit and ask again within a turn or two of the
 * event loop after the previous step), or after a few turns at most, so a slow row delays the others by
 * microseconds, not by a step. One pending request, or no usable batch layout, runs as an ordinary one-row step.
 */
import type { BatchLayout } from "./batch-kv.js";
import type { KvState, ModelRunner } from "./runner.js";

interface Pending {
  state: KvState;
  token: number;
  resolve: (logits: Float32Array) => void;
  reject: (error: unknown) => void;
}

/** Event-loop turns a step waits for joined generations that have not asked yet. */
const MAX_WAIT_TURNS = 3;

export class DecodeBatcher {
  private pending: Pending[] = [];
  private joined = 0;
  private scheduled = false;
  private stepping = false;
  private waitedTurns = 0;

  constructor(
    private readonly runner: ModelRunner,
    private readonly layout: BatchLayout | null,
    private readonly maxRows: number,
    private readonly onStep: (rows: number) => void = () => undefined,
  ) {}

  get batching(): boolean {
    return this.layout !== null && this.maxRows > 1;
  }

  /** A generation enters its decode phase (call `leave` when it ends, however it ends). */
  join(): void {
    this.joined++;
  }

  leave(): void {
    this.joined--;
  }

  decode(state: KvState, token: number): Promise<Float32Array> {
    if (!this.batching) {
      this.onStep(1);
      return this.runner.forward(state, [token]);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ state, token, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stepping) return;
    this.scheduled = true;
    this.waitedTurns = 0;
    setImmediate(this.tick);
  }

  private readonly tick = (): void => {
    const expected = Math.min(this.joined, this.maxRows);
    if (this.pending.length < expected && this.waitedTurns < MAX_WAIT_TURNS) {
      this.waitedTurns++;
      setImmediate(this.tick);
      return;
    }
    this.scheduled = false;
    void this.step();
  };

  private async step(): Promise<void> {
    this.stepping = true;
    const group = this.pending.splice(0, this.maxRows);
    this.onStep(group.length);
    try {
      const logits =
        group.length === 1
          ? [await this.runner.forward(group[0]!.state, [group[0]!.token])]
          : await this.runner.forwardBatch(
              group.map((p) => p.state),
              group.map((p) => p.token),
              this.layout!,
            );
      group.forEach((p, i) => p.resolve(logits[i]!));
    } catch (error) {
      for (const p of group) p.reject(error);
    } finally {
      this.stepping = false;
      if (this.pending.length > 0) this.schedule();
    }
  }
}
