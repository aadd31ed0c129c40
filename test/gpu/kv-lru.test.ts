import { describe, expect, it } from "vitest";
import { KvLru } from "../../src/gpu/kv-lru.js";

class FakeCache {
  disposed = 0;
  constructor(readonly bytes: number) {}
  dispose(): void {
    this.disposed++;
  }
}

describe("KvLru", () => {
  it("evicts least recently used entries to stay within the byte budget, disposing each once", () => {
    const evicted: string[] = [];
    const lru = new KvLru<FakeCache>(100, (key) => evicted.push(key));
    const a = new FakeCache(40);
    const b = new FakeCache(40);
    const c = new FakeCache(30);
    lru.put("a", a);
    lru.put("b", b);
    expect(lru.bytes).toBe(80);
    // Taking and putting back "a" makes it the most recently used.
    expect(lru.take("a")).toBe(a);
    lru.put("a", a);
    lru.put("c", c);
    expect(evicted).toEqual(["b"]);
    expect(b.disposed).toBe(1);
    expect(a.disposed + c.disposed).toBe(0);
    expect(lru.size).toBe(2);
    expect(lru.bytes).toBe(70);
  });

  it("does not keep an entry larger than the whole budget", () => {
    const lru = new KvLru<FakeCache>(10);
    const big = new FakeCache(11);
    expect(lru.put("big", big)).toBe(false);
    expect(big.disposed).toBe(1);
    expect(lru.size).toBe(0);
  });

  it("take() hands over ownership: the entry is no longer counted nor disposed by clear()", () => {
    const lru = new KvLru<FakeCache>(100);
    const a = new FakeCache(10);
    const b = new FakeCache(10);
    lru.put("a", a);
    lru.put("b", b);
    expect(lru.take("a")).toBe(a);
    expect(lru.take("a")).toBeUndefined();
    lru.clear();
    expect(a.disposed).toBe(0);
    expect(b.disposed).toBe(1);
    expect(lru.bytes).toBe(0);
  });

  it("stays bounded over thousands of sessions", () => {
    const lru = new KvLru<FakeCache>(1000);
    const all: FakeCache[] = [];
    for (let i = 0; i < 5000; i++) {
      const c = new FakeCache(7 + (i % 13) * 10);
      all.push(c);
      lru.put(`s${i}`, c);
      expect(lru.bytes).toBeLessThanOrEqual(1000);
    }
    const live = all.filter((c) => c.disposed === 0).length;
    expect(live).toBe(lru.size);
    expect(all.every((c) => c.disposed <= 1)).toBe(true);
  });
});
