/**
 * tiktoken's `byte_pair_encode` (llama-reference.md §1.3) over a byte range, exactly: a piece that is
 * itself a token is emitted whole; otherwise, starting from single bytes, the adjacent pair whose
 * concatenation has the lowest rank is merged, ties going to the leftmost pair, until no adjacent
 * concatenation is a token.
 *
 * Short pieces use tiktoken's own quadratic scan (fastest for the handful of bytes of a typical
 * piece). Long pieces use a binary heap of candidate pairs keyed by (rank, position) over a linked
 * list of parts, which makes the same choices in O(n log n): 200,000 identical letters or 100,000
 * spaces stay linear-ish instead of quadratic.
 */

import type { RankTable } from "./rank-table.js";

/** Pieces up to this many bytes take the quadratic path. */
const SHORT_PIECE_BYTES = 96;
const NO_RANK = 0x7fffffff;

// Scratch buffers reused across calls (encoding is synchronous, so they are never shared).
let starts = new Int32Array(256);
let hashes = new Int32Array(256);
let pairRanks = new Int32Array(256);
let partRanks = new Int32Array(256);

function ensureScratch(n: number): void {
  if (starts.length > n + 1) return;
  let size = starts.length;
  while (size <= n + 1) size *= 2;
  starts = new Int32Array(size);
  hashes = new Int32Array(size);
  pairRanks = new Int32Array(size);
  partRanks = new Int32Array(size);
}

/** Appends the ranks of `bytes[start, end)` to `out`. Every single byte must be a token. */
export function bytePairEncode(table: RankTable, bytes: Uint8Array, start: number, end: number, out: number[]): void {
  const whole = table.rankOf(bytes, start, end);
  if (whole !== -1) {
    out.push(whole);
    return;
  }
  if (end - start <= SHORT_PIECE_BYTES) mergeQuadratic(table, bytes, start, end, out);
  else mergeWithHeap(table, bytes, start, end, out);
}

/** Rank of the concatenation of two adjacent parts, from their hashes; NO_RANK if not a token. */
function pairRank(
  table: RankTable,
  bytes: Uint8Array,
  leftStart: number,
  leftHash: number,
  rightStart: number,
  rightHash: number,
  rightEnd: number,
): number {
  if (rightEnd - leftStart > table.maxTokenLength) return NO_RANK;
  const hash = (Math.imul(leftHash, table.hashPowers[rightEnd - rightStart]) + rightHash) | 0;
  const rank = table.rankOfHashed(hash, bytes, leftStart, rightEnd);
  return rank === -1 ? NO_RANK : rank;
}

/** tiktoken's `_byte_pair_merge`: rescan all pairs after each merge. */
export function mergeQuadratic(table: RankTable, bytes: Uint8Array, start: number, end: number, out: number[]): void {
  const n = end - start;
  ensureScratch(n);
  // Parts 0..m-1 start at starts[i] (absolute offsets); starts[m] === end.
  let m = n;
  for (let i = 0; i < n; i++) {
    starts[i] = start + i;
    hashes[i] = bytes[start + i] + 1;
  }
  starts[n] = end;
  for (let i = 0; i < n - 1; i++) {
    pairRanks[i] = pairRank(table, bytes, starts[i], hashes[i], starts[i + 1], hashes[i + 1], starts[i + 2]);
  }
  for (;;) {
    let best = NO_RANK;
    let at = -1;
    for (let i = 0; i < m - 1; i++) {
      if (pairRanks[i] < best) {
        best = pairRanks[i];
        at = i;
      }
    }
    if (at === -1) break;
    // Merge part at+1 into part at.
    hashes[at] = (Math.imul(hashes[at], table.hashPowers[starts[at + 2] - starts[at + 1]]) + hashes[at + 1]) | 0;
    partRanks[at] = best;
    starts.copyWithin(at + 1, at + 2, m + 1);
    hashes.copyWithin(at + 1, at + 2, m);
    partRanks.copyWithin(at + 1, at + 2, m);
    pairRanks.copyWithin(at + 1, at + 2, m - 1);
    m--;
    if (at + 1 < m) {
      pairRanks[at] = pairRank(table, bytes, starts[at], hashes[at], starts[at + 1], hashes[at + 1], starts[at + 2]);
    } else {
      pairRanks[at] = NO_RANK;
    }
    if (at > 0) {
      pairRanks[at - 1] = pairRank(table, bytes, starts[at - 1], hashes[at - 1], starts[at], hashes[at], starts[at + 1]);
    }
  }
  // partRanks holds the rank of every merged part; parts that stayed single bytes are looked up.
  for (let i = 0; i < m; i++) {
    out.push(starts[i + 1] - starts[i] === 1 ? byteRank(table, bytes, starts[i]) : partRanks[i]);
  }
}

function byteRank(table: RankTable, bytes: Uint8Array, at: number): number {
  const rank = table.rankOf(bytes, at, at + 1);
  if (rank === -1) throw new Error(`byte 0x${bytes[at].toString(16)} is not a token`);
  return rank;
}

// --- heap path -------------------------------------------------------------------------------

let nextPart = new Int32Array(256);
let prevPart = new Int32Array(256);
let heapKeys = new Float64Array(1024);

/** Heap key: rank first, then position, so the minimum is the lowest rank, leftmost. */
const POSITION_RANGE = 2 ** 22;

function mergeWithHeap(table: RankTable, bytes: Uint8Array, start: number, end: number, out: number[]): void {
  const n = end - start;
  if (n >= POSITION_RANGE) throw new RangeError(`piece of ${n} bytes is too long to merge`);
  ensureScratch(n);
  if (nextPart.length <= n + 1) {
    nextPart = new Int32Array(starts.length);
    prevPart = new Int32Array(starts.length);
  }
  if (heapKeys.length < 3 * n + 8) heapKeys = new Float64Array(3 * n + 8);
  // Parts are identified by their offset i within the piece; nextPart[i] is the following part's
  // offset (n at the end), prevPart[i] the preceding one (-1 at the start). pairRanks[i] is the
  // rank of part i merged with its successor, partRanks[i] the rank of part i itself.
  for (let i = 0; i < n; i++) {
    nextPart[i] = i + 1;
    prevPart[i] = i - 1;
    hashes[i] = bytes[start + i] + 1;
    partRanks[i] = byteRank(table, bytes, start + i);
  }
  let heapSize = 0;
  const push = (key: number): void => {
    let i = heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heapKeys[parent] <= key) break;
      heapKeys[i] = heapKeys[parent];
      i = parent;
    }
    heapKeys[i] = key;
  };
  const pop = (): number => {
    const top = heapKeys[0];
    const last = heapKeys[--heapSize];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= heapSize) break;
      if (child + 1 < heapSize && heapKeys[child + 1] < heapKeys[child]) child++;
      if (heapKeys[child] >= last) break;
      heapKeys[i] = heapKeys[child];
      i = child;
    }
    heapKeys[i] = last;
    return top;
  };
  const rankAfter = (i: number): number => {
    const j = nextPart[i];
    if (j >= n) return NO_RANK;
    return pairRank(table, bytes, start + i, hashes[i], start + j, hashes[j], start + nextPart[j]);
  };
  for (let i = 0; i < n - 1; i++) {
    const rank = rankAfter(i);
    pairRanks[i] = rank;
    if (rank !== NO_RANK) push(rank * POSITION_RANGE + i);
  }
  pairRanks[n - 1] = NO_RANK;
  while (heapSize > 0) {
    const key = pop();
    const rank = Math.floor(key / POSITION_RANGE);
    const i = key - rank * POSITION_RANGE;
    // Entries go stale when a neighbour merges; only the pair's current rank is authoritative.
    if (pairRanks[i] !== rank) continue;
    const j = nextPart[i];
    const k = nextPart[j];
    hashes[i] = (Math.imul(hashes[i], table.hashPowers[k - j]) + hashes[j]) | 0;
    partRanks[i] = rank;
    pairRanks[j] = NO_RANK;
    nextPart[i] = k;
    if (k < n) prevPart[k] = i;
    const after = rankAfter(i);
    pairRanks[i] = after;
    if (after !== NO_RANK) push(after * POSITION_RANGE + i);
    const p = prevPart[i];
    if (p >= 0) {
      const before = rankAfter(p);
      pairRanks[p] = before;
      if (before !== NO_RANK) push(before * POSITION_RANGE + p);
    }
  }
  for (let i = 0; i < n; i = nextPart[i]) out.push(partRanks[i]);
}
