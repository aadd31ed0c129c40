/**
 * The first `keep` rows of every head of a [1, heads, rows, headDim] cache, copied into a zeroed cache of
 * `outRows` rows (same element type): cropping a session cache (outRows = keep) and growing the fast decoder's
 * host caches (outRows > rows) are both this copy.
 */
export function copyHeadRows<T extends Float32Array | Uint16Array>(source: T, heads: number, rows: number, headDim: number, keep: number, outRows: number): T {
  if (keep > rows || keep > outRows) throw new Error(`copyHeadRows: cannot keep ${keep} rows of ${rows} in ${outRows}`);
  const Ctor = source.constructor as new (n: number) => T;
  const out = new Ctor(heads * outRows * headDim);
  for (let h = 0; h < heads; h++) {
    out.set(source.subarray(h * rows * headDim, (h * rows + keep) * headDim), h * outRows * headDim);
  }
  return out;
}
