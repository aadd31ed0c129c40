import { describe, expect, it } from "vitest";
import { batchMask, extractRow, mergeRows } from "../../src/gpu/batch-kv.js";

// heads 2, headDim 1: row a has length 1 ([a0 | a1] per head), row b length 3.
const rowA = Float32Array.of(10, 20); // head0: [10], head1: [20]
const rowB = Float32Array.of(1, 2, 3, 4, 5, 6); // head0: [1,2,3], head1: [4,5,6]

describe("batched KV plumbing", () => {
  it("merges rows right-padded to the longest and masks their columns plus the new one", () => {
    const { data, width } = mergeRows([rowA, rowB], [1, 3], 2, 1);
    expect(width).toBe(3);
    // [B=2, heads=2, width=3, 1]
    expect(Array.from(data)).toEqual([10, 0, 0, 20, 0, 0, 1, 2, 3, 4, 5, 6]);
    expect(Array.from(batchMask([1, 3], 3), Number)).toEqual([1, 0, 0, 1, 1, 1, 1, 1]);
  });

  it("extracts a row with its new column from either layout", () => {
    // present [2, 2, 4, 1]; row a's new value 11/21 at column 1 (seqlens) or 3 (append); row b's 7/8 at column 3.
    const seqlens = Float32Array.of(10, 11, 0, 0, 20, 21, 0, 0, 1, 2, 3, 7, 4, 5, 6, 8);
    expect(Array.from(extractRow(seqlens, 0, 1, 3, 2, 1, "seqlens"))).toEqual([10, 11, 20, 21]);
    expect(Array.from(extractRow(seqlens, 1, 3, 3, 2, 1, "seqlens"))).toEqual([1, 2, 3, 7, 4, 5, 6, 8]);
    const append = Float32Array.of(10, 0, 0, 11, 20, 0, 0, 21, 1, 2, 3, 7, 4, 5, 6, 8);
    expect(Array.from(extractRow(append, 0, 1, 3, 2, 1, "append"))).toEqual([10, 11, 20, 21]);
    expect(Array.from(extractRow(append, 1, 3, 3, 2, 1, "append"))).toEqual([1, 2, 3, 7, 4, 5, 6, 8]);
  });

  it("keeps float16 bit patterns as they are", () => {
    const { data } = mergeRows([Uint16Array.of(0x3c00), Uint16Array.of(0x4000, 0x4200)], [1, 2], 1, 1);
    expect(data).toBeInstanceOf(Uint16Array);
    expect(Array.from(data)).toEqual([0x3c00, 0, 0x4000, 0x4200]);
  });
});
