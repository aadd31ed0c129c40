/**
 * tiktoken's `byte_pair_encode` (llama-reference.md §1.3) over a byte range, exactly: a piece that is
 * itself a token is emitted whole; otherwise, starting from single bytes, the adjacent pair whose
 * concatenation has the lowest rank is merged, ties going to the leftmost pair, until no adjacent
 * concatenation is a token.
 *
 * Short pieces use tiktoken's own strategy (rescan the pairs after each merge: fastest for the handful
 * of bytes of a typical piece). Long pieces use a binary heap of candidate pairs keyed by
 * (rank, position) over a linked list of parts, which makes the same choices in O(n log n), so
 * 200,000 identical letters or 100,000 spaces stay fast instead of quadratic.
 *
 * Two memos make repeated work cheap, and both are exact because they key on everything the result
 * depends on: results for short pieces, in a direct-mapped cache keyed by the piece bytes (natural text
 * repeats its out-of-vocabulary pieces); and the rank of each adjacent pair of parts, keyed by the two
 * parts' ranks (every part is a token, so the pair's bytes are a function of the two ranks).
 */

import type { RankTable } from "./rank-table.js";
import { HASH_MULTIPLIER, hashBytes, PACKED_MAX_LENGTH } from "./rank-table.js";

/** Pieces up to this many bytes take the rescanning path. */
const SHORT_PIECE_BYTES = 24;
const NO_RANK = 0x7fffffff;
/** Heap keys are rank * POSITION_RANGE + offset, so the minimum is the lowest rank, leftmost. */
const POSITION_RANGE = 2 ** 22;

/** Scratch arrays larger than this many parts are released after use. */
const SCRATCH_RETAIN_PARTS = 1 << 16;

const CACHE_BITS = 12;
const CACHE_ENTRIES = 1 << CACHE_BITS;
/** Longest piece (bytes) and longest result (ranks) the cache stores. */
const CACHE_KEY_BYTES = 32;
const CACHE_RESULT_RANKS = 16;

const PAIR_MEMO_BITS = 14;
/** Memo cell stride in Int32s: left rank, right rank, pair rank (and padding to 16 bytes). */
const PAIR_MEMO_STRIDE = 4;

export class BytePairEncoder {
  private readonly table: RankTable;
  private readonly hashPowers: Int32Array;
  private readonly maxTokenLength: number;

  // Scratch state for one merge, indexed by part (offset within the piece).
  private nextPart = new Int32Array(256);
  private prevPart = new Int32Array(256);
  private hashes = new Int32Array(256);
  private pairRanks = new Int32Array(256);
  private partRanks = new Int32Array(256);
  private heapKeys = new Float64Array(768);
  private heapSize = 0;

  // Direct-mapped cache: entry e holds a piece of cacheKeyLength[e] bytes (0 = empty) and its ranks.
  private readonly cacheHash = new Int32Array(CACHE_ENTRIES);
  private readonly cacheKeyLength = new Uint8Array(CACHE_ENTRIES);
  private readonly cacheKeys = new Uint8Array(CACHE_ENTRIES * CACHE_KEY_BYTES);
  private readonly cacheResultLength = new Uint8Array(CACHE_ENTRIES);
  private readonly cacheResults = new Int32Array(CACHE_ENTRIES * CACHE_RESULT_RANKS);

  /** Rank of each single byte. */
  private readonly byteRanks: Int32Array;
  /** Direct-mapped memo of pair ranks: (left rank, right rank) -> rank of the concatenation or NO_RANK. */
  private readonly pairMemo = new Int32Array(PAIR_MEMO_STRIDE << PAIR_MEMO_BITS).fill(-1);

  /** `byteRanks[b]` is the rank of byte `b`; every byte must be a token (the tokenizer checks). */
  constructor(table: RankTable, byteRanks: Int32Array) {
    this.table = table;
    this.hashPowers = table.hashPowers;
    this.maxTokenLength = table.maxTokenLength;
    this.byteRanks = byteRanks;
  }

  /** Appends the ranks of `bytes[start, end)` to `out`. Every single byte must be a token. */
  encode(bytes: Uint8Array, start: number, end: number, out: number[]): void {
    const length = end - start;
    if (length > this.maxTokenLength) {
      this.merge(bytes, start, end, out);
      return;
    }
    let hash: number;
    let whole: number;
    if (length <= PACKED_MAX_LENGTH) {
      // Most pieces are short: hash and pack them in one pass and compare whole words.
      hash = 0;
      let low = 0;
      let high = length << 24;
      for (let i = 0; i < length; i++) {
        const b = bytes[start + i];
        hash = (Math.imul(hash, HASH_MULTIPLIER) + b + 1) | 0;
        if (i < 4) low |= b << (8 * i);
        else high |= b << (8 * (i - 4));
      }
      whole = this.table.rankOfPacked(hash, low >>> 0, high >>> 0);
    } else {
      hash = hashBytes(bytes, start, end);
      whole = this.table.rankOfHashed(hash, bytes, start, end);
    }
    if (whole !== -1) {
      out.push(whole);
      return;
    }
    if (length > CACHE_KEY_BYTES) {
      this.merge(bytes, start, end, out);
      return;
    }
    const entry = Math.imul(hash, 0x9e3779b1) >>> (32 - CACHE_BITS);
    if (this.cacheKeyLength[entry] === length && this.cacheHash[entry] === hash) {
      const key = entry * CACHE_KEY_BYTES;
      let i = 0;
      while (i < length && this.cacheKeys[key + i] === bytes[start + i]) i++;
      if (i === length) {
        const results = entry * CACHE_RESULT_RANKS;
        const count = this.cacheResultLength[entry];
        for (let k = 0; k < count; k++) out.push(this.cacheResults[results + k]);
        return;
      }
    }
    const before = out.length;
    this.merge(bytes, start, end, out);
    const count = out.length - before;
    if (count <= CACHE_RESULT_RANKS) {
      this.cacheHash[entry] = hash;
      this.cacheKeyLength[entry] = length;
      this.cacheKeys.set(bytes.subarray(start, end), entry * CACHE_KEY_BYTES);
      this.cacheResultLength[entry] = count;
      const results = entry * CACHE_RESULT_RANKS;
      for (let k = 0; k < count; k++) this.cacheResults[results + k] = out[before + k];
    }
  }

  /** The merge loop alone (no whole-piece lookup, no cache): exposed so tests can compare strategies. */
  merge(bytes: Uint8Array, start: number, end: number, out: number[], strategy?: "rescan" | "heap"): void {
    const n = end - start;
    if (n >= POSITION_RANGE) throw new RangeError(`piece of ${n} bytes is too long to merge`);
    this.ensureScratch(n);
    const hashes = this.hashes;
    const partRanks = this.partRanks;
    const nextPart = this.nextPart;
    const prevPart = this.prevPart;
    const byteRanks = this.byteRanks;
    for (let i = 0; i < n; i++) {
      const b = bytes[start + i];
      nextPart[i] = i + 1;
      prevPart[i] = i - 1;
      hashes[i] = b + 1;
      partRanks[i] = byteRanks[b];
    }
    if (strategy === "heap" || (strategy === undefined && n > SHORT_PIECE_BYTES)) this.mergeWithHeap(bytes, start, n);
    else this.mergeByRescan(bytes, start, n);
    for (let i = 0; i < n; i = nextPart[i]) out.push(partRanks[i]);
    // Do not keep megabytes of scratch alive after one huge piece (an isolate's memory is shared).
    if (this.nextPart.length > SCRATCH_RETAIN_PARTS) this.resetScratch(256);
  }

  private ensureScratch(n: number): void {
    if (this.nextPart.length > n + 1) return;
    let size = this.nextPart.length;
    while (size <= n + 1) size *= 2;
    this.resetScratch(size);
  }

  private resetScratch(size: number): void {
    this.nextPart = new Int32Array(size);
    this.prevPart = new Int32Array(size);
    this.hashes = new Int32Array(size);
    this.pairRanks = new Int32Array(size);
    this.partRanks = new Int32Array(size);
    this.heapKeys = new Float64Array(3 * size);
  }

  /** Rank of part `i` merged with its successor (NO_RANK if that is not a token or there is none). */
  private rankAfter(bytes: Uint8Array, start: number, n: number, i: number): number {
    const j = this.nextPart[i];
    if (j >= n) return NO_RANK;
    const left = this.partRanks[i];
    const right = this.partRanks[j];
    const memo = this.pairMemo;
    const cell = (Math.imul(left ^ Math.imul(right, 0x2c1b3c6d), 0x9e3779b1) >>> (32 - PAIR_MEMO_BITS)) * PAIR_MEMO_STRIDE;
    if (memo[cell] === left && memo[cell + 1] === right) return memo[cell + 2];
    const k = this.nextPart[j];
    let rank = NO_RANK;
    if (k - i <= this.maxTokenLength) {
      const hash = (Math.imul(this.hashes[i], this.hashPowers[k - j]) + this.hashes[j]) | 0;
      const found = this.table.rankOfHashed(hash, bytes, start + i, start + k);
      if (found !== -1) rank = found;
    }
    memo[cell] = left;
    memo[cell + 1] = right;
    memo[cell + 2] = rank;
    return rank;
  }

  /** Merges part i with its successor, whose concatenation has rank `rank`. */
  private mergeAt(i: number, rank: number, n: number): void {
    const nextPart = this.nextPart;
    const j = nextPart[i];
    const k = nextPart[j];
    this.hashes[i] = (Math.imul(this.hashes[i], this.hashPowers[k - j]) + this.hashes[j]) | 0;
    this.partRanks[i] = rank;
    this.pairRanks[j] = NO_RANK;
    nextPart[i] = k;
    if (k < n) this.prevPart[k] = i;
  }

  /** tiktoken's `_byte_pair_merge`: after each merge, rescan all pairs for the lowest rank. */
  private mergeByRescan(bytes: Uint8Array, start: number, n: number): void {
    const pairRanks = this.pairRanks;
    const nextPart = this.nextPart;
    for (let i = 0; i < n; i++) pairRanks[i] = this.rankAfter(bytes, start, n, i);
    for (;;) {
      let best = NO_RANK;
      let at = -1;
      for (let i = 0; i < n; i = nextPart[i]) {
        if (pairRanks[i] < best) {
          best = pairRanks[i];
          at = i;
        }
      }
      if (at === -1) return;
      this.mergeAt(at, best, n);
      pairRanks[at] = this.rankAfter(bytes, start, n, at);
      const p = this.prevPart[at];
      if (p >= 0) pairRanks[p] = this.rankAfter(bytes, start, n, p);
    }
  }

  /** The same merges driven by a heap of (rank, position) keys with lazy deletion. */
  private mergeWithHeap(bytes: Uint8Array, start: number, n: number): void {
    const pairRanks = this.pairRanks;
    this.heapSize = 0;
    for (let i = 0; i < n; i++) {
      const rank = this.rankAfter(bytes, start, n, i);
      pairRanks[i] = rank;
      if (rank !== NO_RANK) this.heapPush(rank * POSITION_RANGE + i);
    }
    while (this.heapSize > 0) {
      const key = this.heapPop();
      const rank = Math.floor(key / POSITION_RANGE);
      const i = key - rank * POSITION_RANGE;
      // Entries go stale when a neighbour merges; the pair's current rank is authoritative. A key
      // equal to the current (rank, i) is the true minimum, whichever push it came from.
      if (pairRanks[i] !== rank) continue;
      this.mergeAt(i, rank, n);
      const after = this.rankAfter(bytes, start, n, i);
      pairRanks[i] = after;
      if (after !== NO_RANK) this.heapPush(after * POSITION_RANGE + i);
      const p = this.prevPart[i];
      if (p >= 0) {
        const before = this.rankAfter(bytes, start, n, p);
        pairRanks[p] = before;
        if (before !== NO_RANK) this.heapPush(before * POSITION_RANGE + p);
      }
    }
  }

  private heapPush(key: number): void {
    const heap = this.heapKeys;
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] <= key) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = key;
  }

  private heapPop(): number {
    const heap = this.heapKeys;
    const top = heap[0];
    const size = --this.heapSize;
    const last = heap[size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
