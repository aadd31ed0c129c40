/**
 * Typed-array plumbing of batched decoding: one decode step for several sequences of different lengths.
 *
 * Rows are never left-padded (GQA graphs compute positions as `sum(mask) - 1`, which breaks left padding;
 * runtime notes §6). Each row's cache [1, heads, L_b, d] is copied to the start of its row of a
 * [B, heads, P, d] tensor (P = max L_b, zeros after), and the mask marks columns [0, L_b) and the new
 * token's column P. Where the graph then writes the new key/value depends on the attention kernel:
 *  - "seqlens": at column L_b (GroupQueryAttention indexes the cache by per-row lengths);
 *  - "append":  at column P (a concatenating graph with an explicit mask).
 * The layout of the loaded graph is found by probing it against one-row steps (runner.probeBatchLayout).
 */

export type BatchLayout = "seqlens" | "append";

type KvArray = Float32Array | Uint16Array;

function alloc(like: KvArray, n: number): KvArray {
  return like instanceof Float32Array ? new Float32Array(n) : new Uint16Array(n);
}

/** Rows [1, heads, L_b, d] → [B, heads, P, d], each row at the start of its slot. */
export function mergeRows(rows: readonly KvArray[], lengths: readonly number[], heads: number, headDim: number): { data: KvArray; width: number } {
  const width = Math.max(...lengths);
  const data = alloc(rows[0]!, rows.length * heads * width * headDim);
  rows.forEach((src, b) => {
    const length = lengths[b]!;
    for (let h = 0; h < heads; h++) {
      data.set(src.subarray(h * length * headDim, (h + 1) * length * headDim), (b * heads + h) * width * headDim);
    }
  });
  return { data, width };
}

/** The attention mask of a merged step: row b sees columns [0, L_b) and the new column `width`. */
export function batchMask(lengths: readonly number[], width: number): BigInt64Array {
  const total = width + 1;
  const mask = new BigInt64Array(lengths.length * total);
  lengths.forEach((length, b) => {
    mask.fill(1n, b * total, b * total + length);
    mask[b * total + width] = 1n;
  });
  return mask;
}

/**
 * Row b of a batched step's present [B, heads, width + 1, d] as its own cache [1, heads, L_b + 1, d]: the old
 * columns [0, L_b) and the new token's column (L_b or `width`, by layout).
 */
export function extractRow(
  present: KvArray,
  b: number,
  length: number,
  width: number,
  heads: number,
  headDim: number,
  layout: BatchLayout,
): KvArray {
  const total = width + 1;
  const out = alloc(present, heads * (length + 1) * headDim);
  const newColumn = layout === "seqlens" ? length : width;
  for (let h = 0; h < heads; h++) {
    const rowStart = (b * heads + h) * total * headDim;
    const dst = h * (length + 1) * headDim;
    out.set(present.subarray(rowStart, rowStart + length * headDim), dst);
    out.set(present.subarray(rowStart + newColumn * headDim, rowStart + (newColumn + 1) * headDim), dst + length * headDim);
  }
  return out;
}
