/**
 * Session KV caches between turns: an LRU bounded by a byte budget. A cache is *taken out* while its session
 * generates (the runtime mutates KV state in place, so it must never be shared) and put back afterwards;
 * eviction disposes it, which frees the tensors (GPU buffers on WebGPU).
 */

export interface Disposable {
  readonly bytes: number;
  dispose(): void;
}

export class KvLru<T extends Disposable> {
  private readonly entries = new Map<string, T>();
  private totalBytes = 0;

  constructor(
    readonly budgetBytes: number,
    private readonly onEvict: (key: string, value: T) => void = () => undefined,
  ) {
    if (!(budgetBytes >= 0)) throw new Error(`KvLru: bad budget ${budgetBytes}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Removes and returns the cache of `key` (the caller now owns it). */
  take(key: string): T | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.totalBytes -= value.bytes;
    return value;
  }

  /**
   * Stores `value` as most recently used and evicts least recently used entries until the total fits the
   * budget. A value larger than the whole budget is disposed at once. Returns whether it was kept.
   */
  put(key: string, value: T): boolean {
    const previous = this.take(key);
    if (previous !== undefined && previous !== value) previous.dispose();
    if (value.bytes > this.budgetBytes) {
      this.onEvict(key, value);
      value.dispose();
      return false;
    }
    this.entries.set(key, value);
    this.totalBytes += value.bytes;
    for (const [k, v] of this.entries) {
      if (this.totalBytes <= this.budgetBytes) break;
      this.entries.delete(k);
      this.totalBytes -= v.bytes;
      this.onEvict(k, v);
      v.dispose();
    }
    return true;
  }

  /** Drops and disposes everything. */
  clear(): void {
    for (const [k, v] of this.entries) {
      this.onEvict(k, v);
      v.dispose();
    }
    this.entries.clear();
    this.totalBytes = 0;
  }
}
