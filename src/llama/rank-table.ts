/**
 * The BPE rank table in a compact binary form that loads in O(1): every structure is a typed-array
 * view over one buffer, so a Worker wraps its bundled asset without building a 128k-entry Map or
 * decoding a single string.
 *
 * Layout (little-endian, every section 4-byte aligned):
 *
 * | bytes            | content                                                               |
 * | ---------------- | --------------------------------------------------------------------- |
 * | 0..31            | header: magic "L3RT", version, tokenCount, hashBits, blobLength, maxTokenLength, 0, 0 |
 * | offsets          | Uint32Array(tokenCount + 1): token `r` is `blob[offsets[r], offsets[r+1])`  |
 * | packed           | Uint32Array(2 * tokenCount): tokens of up to 7 bytes inline (see below)    |
 * | slots            | Uint32Array(2 << hashBits): open-addressing table of (hash, rank + 1) pairs, 0 = empty |
 * | blob             | Uint8Array(blobLength): all token bytes in rank order, zero-padded to 4  |
 *
 * `packed[2r]` holds bytes 0–3 of token `r` (little-endian), `packed[2r+1]` bytes 4–6 and, in its top
 * byte, the length; the top byte is 0 for tokens longer than 7 bytes. Most tokens are that short, so
 * a lookup's byte comparison and decoding read one aligned 8-byte cell instead of an offset and a
 * blob position in two other places: fewer cache misses on the hot paths.
 *
 * The hash is a polynomial over the bytes (see {@link hashBytes}), so the hash of a concatenation
 * follows from the hashes of its halves: the BPE merge loop never re-reads bytes to probe a pair.
 */

const MAGIC = 0x5452334c; // "L3RT" read as a little-endian u32
export const RANK_TABLE_FORMAT_VERSION = 2;
/** Longest token stored inline in `packed`. */
export const PACKED_MAX_LENGTH = 7;
const HEADER_BYTES = 32;
/** Longest token the format accepts (Llama 3's longest is far shorter). */
const MAX_TOKEN_LENGTH = 4096;

/** Multiplier of the polynomial byte hash. Odd, so multiplication is invertible mod 2^32. */
export const HASH_MULTIPLIER = 0x01000193;

/** Polynomial hash of `bytes[start, end)`: h = h * M + (byte + 1), mod 2^32. */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0;
  for (let i = start; i < end; i++) h = (Math.imul(h, HASH_MULTIPLIER) + bytes[i] + 1) | 0;
  return h;
}

/** Maps a byte hash to its home slot; mixes the high and low bits first. */
function slotOf(hash: number, shift: number): number {
  return Math.imul(hash ^ (hash >>> 15), 0x2c1b3c6d) >>> shift;
}

export class RankTableFormatError extends Error {
  override name = "RankTableFormatError";
}

export class RankTable {
  /** Number of tokens; ranks are 0..tokenCount-1. */
  readonly tokenCount: number;
  /** Length in bytes of the longest token. */
  readonly maxTokenLength: number;
  /** `offsets[r]..offsets[r+1]` is token `r` in {@link blob}. */
  readonly offsets: Uint32Array;
  /** All token bytes, concatenated in rank order. */
  readonly blob: Uint8Array;
  /** Short tokens inline: two words per rank (see the layout above). */
  readonly packed: Uint32Array;
  /** `(hash, rank + 1)` pairs; a rank field of 0 marks an empty slot. */
  readonly slots: Uint32Array;
  private readonly slotMask: number;
  private readonly shift: number;
  /** `HASH_MULTIPLIER ** n` for n up to 2 * maxTokenLength, to combine the hashes of two parts. */
  readonly hashPowers: Int32Array;

  private constructor(
    tokenCount: number,
    maxTokenLength: number,
    hashBits: number,
    offsets: Uint32Array,
    packed: Uint32Array,
    slots: Uint32Array,
    blob: Uint8Array,
  ) {
    this.tokenCount = tokenCount;
    this.packed = packed;
    this.maxTokenLength = maxTokenLength;
    this.offsets = offsets;
    this.slots = slots;
    this.blob = blob;
    this.slotMask = (1 << hashBits) - 1;
    this.shift = 32 - hashBits;
    this.hashPowers = new Int32Array(2 * maxTokenLength + 1);
    let p = 1;
    for (let i = 0; i < this.hashPowers.length; i++) {
      this.hashPowers[i] = p;
      p = Math.imul(p, HASH_MULTIPLIER);
    }
  }

  /** Builds the table from the token byte strings indexed by rank. */
  static build(tokens: readonly Uint8Array[]): RankTable {
    const tokenCount = tokens.length;
    let blobLength = 0;
    let maxTokenLength = 0;
    for (let r = 0; r < tokenCount; r++) {
      const len = tokens[r].length;
      if (len === 0) throw new RankTableFormatError(`token with rank ${r} is empty`);
      if (len > MAX_TOKEN_LENGTH) throw new RankTableFormatError(`token with rank ${r} is longer than ${MAX_TOKEN_LENGTH} bytes`);
      blobLength += len;
      if (len > maxTokenLength) maxTokenLength = len;
    }
    // Load factor below one half keeps probe sequences short.
    let hashBits = 4;
    while (1 << hashBits < 2 * tokenCount) hashBits++;
    const { offsets, packed, slots, blob } = allocate(tokenCount, hashBits, blobLength, maxTokenLength);
    let pos = 0;
    for (let r = 0; r < tokenCount; r++) {
      const token = tokens[r];
      offsets[r] = pos;
      blob.set(token, pos);
      pos += token.length;
      if (token.length <= PACKED_MAX_LENGTH) {
        packed[2 * r] = packLow(token, 0, token.length);
        packed[2 * r + 1] = packHigh(token, 0, token.length);
      }
    }
    offsets[tokenCount] = pos;
    const table = new RankTable(tokenCount, maxTokenLength, hashBits, offsets, packed, slots, blob);
    for (let r = 0; r < tokenCount; r++) {
      const start = offsets[r];
      const end = offsets[r + 1];
      const hash = hashBytes(blob, start, end);
      if (table.rankOfHashed(hash, blob, start, end) !== -1) {
        throw new RankTableFormatError(`token with rank ${r} duplicates an earlier token`);
      }
      let slot = slotOf(hash, table.shift);
      while (slots[2 * slot + 1] !== 0) slot = (slot + 1) & table.slotMask;
      slots[2 * slot] = hash;
      slots[2 * slot + 1] = r + 1;
    }
    return table;
  }

  /**
   * Wraps serialised table bytes without copying (unless they are not 4-byte aligned). Only O(1)
   * checks run here, so construction stays near zero cost: the header and the section sizes must be
   * consistent. The lookups are written so that corrupt contents cannot make them loop forever or
   * read out of bounds (probing is bounded; decoding checks token lengths); content integrity is
   * proved when the asset is built (`scripts/build-tokenizer.ts`) and by the tests.
   */
  static fromBytes(data: Uint8Array): RankTable {
    if (data.byteOffset % 4 !== 0) data = data.slice();
    if (data.byteLength < HEADER_BYTES) {
      throw new RankTableFormatError(`rank table is ${data.byteLength} bytes, shorter than its header`);
    }
    const header = new Uint32Array(data.buffer, data.byteOffset, HEADER_BYTES / 4);
    if (header[0] !== MAGIC) {
      throw new RankTableFormatError("not a Llama 3 rank table (bad magic number; or a big-endian platform)");
    }
    if (header[1] !== RANK_TABLE_FORMAT_VERSION) {
      throw new RankTableFormatError(
        `rank table format version ${header[1]} is not supported (expected ${RANK_TABLE_FORMAT_VERSION}); rebuild the asset`,
      );
    }
    const [, , tokenCount, hashBits, blobLength, maxTokenLength] = header;
    if (tokenCount < 1 || tokenCount > 1 << 24) throw new RankTableFormatError(`rank table tokenCount ${tokenCount} is out of range`);
    if (hashBits < 4 || hashBits > 26 || 1 << hashBits < 2 * tokenCount) {
      throw new RankTableFormatError(`rank table hashBits ${hashBits} does not fit ${tokenCount} tokens`);
    }
    if (maxTokenLength < 1 || maxTokenLength > Math.min(blobLength, MAX_TOKEN_LENGTH)) {
      throw new RankTableFormatError(`rank table maxTokenLength ${maxTokenLength} is out of range`);
    }
    const expected = totalBytes(tokenCount, hashBits, blobLength);
    if (data.byteLength !== expected) {
      throw new RankTableFormatError(`rank table is ${data.byteLength} bytes, its header says ${expected}`);
    }
    const { offsets, packed, slots, blob } = views(data, tokenCount, hashBits, blobLength);
    if (offsets[0] !== 0 || offsets[tokenCount] !== blobLength) {
      throw new RankTableFormatError("rank table token offsets do not span the byte blob");
    }
    return new RankTable(tokenCount, maxTokenLength, hashBits, offsets, packed, slots, blob);
  }

  /** True if `data` starts like a serialised rank table (any version). */
  static hasMagic(data: Uint8Array): boolean {
    return data.length >= 4 && data[0] === 0x4c && data[1] === 0x33 && data[2] === 0x52 && data[3] === 0x54;
  }

  /** The serialised table (shares memory with this table when it was loaded with `fromBytes`). */
  toBytes(): Uint8Array {
    const hashBits = 32 - this.shift;
    const total = totalBytes(this.tokenCount, hashBits, this.blob.length);
    const buffer = this.offsets.buffer;
    const start = this.offsets.byteOffset - HEADER_BYTES;
    return new Uint8Array(buffer, start, total);
  }

  /** Rank of the token whose bytes are `bytes[start, end)`, or -1. */
  rankOf(bytes: Uint8Array, start: number, end: number): number {
    if (end - start > this.maxTokenLength) return -1;
    return this.rankOfHashed(hashBytes(bytes, start, end), bytes, start, end);
  }

  /** Like {@link rankOf} with the hash of `bytes[start, end)` already known. */
  rankOfHashed(hash: number, bytes: Uint8Array, start: number, end: number): number {
    const slots = this.slots;
    const packed = this.packed;
    const len = end - start;
    const h = hash >>> 0;
    let slot = slotOf(hash, this.shift);
    // A well-formed table always has empty slots; the bound only matters for a corrupt one.
    for (let probes = this.slotMask; probes >= 0; probes--) {
      const stored = slots[2 * slot + 1];
      if (stored === 0) return -1;
      if (slots[2 * slot] === h) {
        const rank = stored - 1;
        const high = packed[2 * rank + 1];
        if (high >>> 24 === len) {
          if (packed[2 * rank] === packLow(bytes, start, len) && high === packHigh(bytes, start, len)) return rank;
        } else if (len > PACKED_MAX_LENGTH && this.blobEquals(rank, bytes, start, len)) {
          return rank;
        }
      }
      slot = (slot + 1) & this.slotMask;
    }
    return -1;
  }

  /**
   * Rank of a token of at most 7 bytes given its hash and its two `packed` words (see the layout), or
   * -1: the comparison needs no byte access at all.
   */
  rankOfPacked(hash: number, low: number, high: number): number {
    const slots = this.slots;
    const packed = this.packed;
    const h = hash >>> 0;
    let slot = slotOf(hash, this.shift);
    for (let probes = this.slotMask; probes >= 0; probes--) {
      const stored = slots[2 * slot + 1];
      if (stored === 0) return -1;
      if (slots[2 * slot] === h && packed[2 * stored - 1] === high && packed[2 * stored - 2] === low) return stored - 1;
      slot = (slot + 1) & this.slotMask;
    }
    return -1;
  }

  private blobEquals(rank: number, bytes: Uint8Array, start: number, len: number): boolean {
    const tokenStart = this.offsets[rank];
    if (this.offsets[rank + 1] - tokenStart !== len) return false;
    const blob = this.blob;
    for (let i = 0; i < len; i++) if (blob[tokenStart + i] !== bytes[start + i]) return false;
    return true;
  }

  /** The rank of each single byte, -1 where a byte is not a token. */
  singleByteRanks(): Int32Array {
    const ranks = new Int32Array(256);
    const one = new Uint8Array(1);
    for (let b = 0; b < 256; b++) {
      one[0] = b;
      ranks[b] = this.rankOf(one, 0, 1);
    }
    return ranks;
  }

  /** A copy of the bytes of token `rank`. */
  tokenBytes(rank: number): Uint8Array {
    return this.blob.slice(this.offsets[rank], this.offsets[rank + 1]);
  }
}

/** `packed` word 0 of `bytes[start, start + len)`: bytes 0–3, little-endian, as a u32. */
export function packLow(bytes: Uint8Array, start: number, len: number): number {
  let word = 0;
  const n = len < 4 ? len : 4;
  for (let i = 0; i < n; i++) word |= bytes[start + i] << (8 * i);
  return word >>> 0;
}

/** `packed` word 1 of `bytes[start, start + len)` (len <= 7): bytes 4–6 and the length on top. */
export function packHigh(bytes: Uint8Array, start: number, len: number): number {
  let word = len << 24;
  for (let i = 4; i < len; i++) word |= bytes[start + i] << (8 * (i - 4));
  return word >>> 0;
}

function totalBytes(tokenCount: number, hashBits: number, blobLength: number): number {
  return HEADER_BYTES + 4 * (tokenCount + 1) + 8 * tokenCount + 8 * (1 << hashBits) + ((blobLength + 3) & ~3);
}

function views(data: Uint8Array, tokenCount: number, hashBits: number, blobLength: number) {
  let at = data.byteOffset + HEADER_BYTES;
  const offsets = new Uint32Array(data.buffer, at, tokenCount + 1);
  at += offsets.byteLength;
  const packed = new Uint32Array(data.buffer, at, 2 * tokenCount);
  at += packed.byteLength;
  const slots = new Uint32Array(data.buffer, at, 2 << hashBits);
  at += slots.byteLength;
  const blob = new Uint8Array(data.buffer, at, blobLength);
  return { offsets, packed, slots, blob };
}

function allocate(tokenCount: number, hashBits: number, blobLength: number, maxTokenLength: number) {
  const buffer = new ArrayBuffer(totalBytes(tokenCount, hashBits, blobLength));
  const header = new Uint32Array(buffer, 0, HEADER_BYTES / 4);
  header.set([MAGIC, RANK_TABLE_FORMAT_VERSION, tokenCount, hashBits, blobLength, maxTokenLength, 0, 0]);
  return views(new Uint8Array(buffer), tokenCount, hashBits, blobLength);
}
