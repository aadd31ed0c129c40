/**
 * The Llama 3 pre-tokenizer as a hand-written scanner over UTF-8 bytes, equivalent to the split regex
 * (`split-regex.ts`) run with Rust `fancy-regex` semantics, leftmost-first:
 *
 * ```
 * 1 (?i:'s|'t|'re|'ve|'m|'ll|'d)
 * 2 [^\r\n\p{L}\p{N}]?\p{L}+
 * 3 \p{N}{1,3}
 * 4  ?[^\s\p{L}\p{N}]+[\r\n]*
 * 5 \s*[\r\n]+
 * 6 \s+(?!\S)
 * 7 \s+
 * ```
 *
 * Working on the bytes the BPE needs anyway avoids the regex engine, the match objects and a UTF-8
 * encode per piece. `\s` is Unicode White_Space; `\p{L}`/`\p{N}` come from the engine's own Unicode
 * tables (classified lazily, 256 code points at a time), exactly as the regex sees them.
 */

import { isWhiteSpace } from "./whitespace.js";

/** Character classes the pattern distinguishes. */
export const enum CharClass {
  Other = 0,
  Letter = 1,
  Number = 2,
  /** White_Space other than CR and LF. */
  Space = 3,
  /** CR or LF (also White_Space). */
  Newline = 4,
}

const LETTER = /\p{L}/u;
const NUMBER = /\p{N}/u;

function classify(cp: number): CharClass {
  if (cp === 0x0a || cp === 0x0d) return CharClass.Newline;
  if (isWhiteSpace(cp)) return CharClass.Space;
  if (cp >= 0xd800 && cp <= 0xdfff) return CharClass.Other;
  const ch = String.fromCodePoint(cp);
  if (LETTER.test(ch)) return CharClass.Letter;
  if (NUMBER.test(ch)) return CharClass.Number;
  return CharClass.Other;
}

/** Classes of code points, in pages of 256 filled on first use. */
const pages: (Uint8Array | undefined)[] = new Array(0x110000 >>> 8);

function fillPage(page: number): Uint8Array {
  const table = new Uint8Array(256);
  const base = page << 8;
  for (let i = 0; i < 256; i++) table[i] = classify(base + i);
  pages[page] = table;
  return table;
}

const ASCII = fillPage(0);

/** The class of code point `cp`. */
export function charClass(cp: number): CharClass {
  return (pages[cp >>> 8] ?? fillPage(cp >>> 8))[cp & 0xff];
}

/** Code point of the well-formed UTF-8 sequence at `bytes[pos]` (lead byte `b`). */
function codePointAt(bytes: Uint8Array, pos: number, b: number): number {
  if (b < 0xe0) return ((b & 0x1f) << 6) | (bytes[pos + 1] & 0x3f);
  if (b < 0xf0) return ((b & 0x0f) << 12) | ((bytes[pos + 1] & 0x3f) << 6) | (bytes[pos + 2] & 0x3f);
  return ((b & 0x07) << 18) | ((bytes[pos + 1] & 0x3f) << 12) | ((bytes[pos + 2] & 0x3f) << 6) | (bytes[pos + 3] & 0x3f);
}

function sequenceLength(b: number): number {
  return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

function classAt(bytes: Uint8Array, pos: number): CharClass {
  const b = bytes[pos];
  return b < 0x80 ? ASCII[b] : charClass(codePointAt(bytes, pos, b));
}

/** End of the run of `cls` characters starting at `pos`. */
function runEnd(bytes: Uint8Array, pos: number, end: number, cls: CharClass): number {
  while (pos < end) {
    const b = bytes[pos];
    if (b < 0x80) {
      if (ASCII[b] !== cls) break;
      pos++;
    } else {
      if (charClass(codePointAt(bytes, pos, b)) !== cls) break;
      pos += sequenceLength(b);
    }
  }
  return pos;
}

/** Length of a case-insensitive contraction (`'s`, `'re`, …) at `pos` (an apostrophe), or 0. */
function contractionLength(bytes: Uint8Array, pos: number, end: number): number {
  if (pos + 1 >= end) return 0;
  const b1 = bytes[pos + 1];
  const l1 = b1 | 0x20; // ASCII lower case; only the two cases of a letter map to it
  if (l1 === 0x73 || l1 === 0x74 || l1 === 0x6d || l1 === 0x64) return 2; // s t m d
  if (b1 === 0xc5 && pos + 2 < end && bytes[pos + 2] === 0xbf) return 3; // U+017F folds to s
  if (pos + 2 >= end) return 0;
  const l2 = bytes[pos + 2] | 0x20;
  if ((l1 === 0x72 || l1 === 0x76) && l2 === 0x65) return 3; // re ve
  if (l1 === 0x6c && l2 === 0x6c) return 3; // ll
  return 0;
}

/**
 * End offset of the piece that starts at `pos` in the UTF-8 text `bytes[..end)`. `end` is the end of
 * the text the regex would see (lookahead does not pass it). `bytes` must be well-formed UTF-8.
 */
export function pieceEnd(bytes: Uint8Array, pos: number, end: number): number {
  const b = bytes[pos];
  let cls: CharClass;
  let next: number;
  if (b < 0x80) {
    if (b === 0x27) {
      const c = contractionLength(bytes, pos, end);
      if (c !== 0) return pos + c;
    }
    cls = ASCII[b];
    next = pos + 1;
  } else {
    cls = charClass(codePointAt(bytes, pos, b));
    next = pos + sequenceLength(b);
  }
  // 2: a letter run, optionally after one character that is not CR, LF, a letter or a number.
  if (cls === CharClass.Letter) return runEnd(bytes, next, end, CharClass.Letter);
  // 3: one to three numbers.
  if (cls === CharClass.Number) {
    for (let k = 1; k < 3 && next < end && classAt(bytes, next) === CharClass.Number; k++) {
      next += sequenceLength(bytes[next]);
    }
    return next;
  }
  const nextCls = next < end ? classAt(bytes, next) : -1;
  if (nextCls === CharClass.Letter && cls !== CharClass.Newline) {
    return runEnd(bytes, next + sequenceLength(bytes[next]), end, CharClass.Letter);
  }
  // 4: an optional space, a run of "other" characters, then any CR/LF.
  let otherStart = -1;
  if (cls === CharClass.Other) otherStart = pos;
  else if (b === 0x20 && nextCls === CharClass.Other) otherStart = next;
  if (otherStart !== -1) {
    let p = runEnd(bytes, otherStart, end, CharClass.Other);
    while (p < end && (bytes[p] === 0x0a || bytes[p] === 0x0d)) p++;
    return p;
  }
  // Whitespace: find the run, the end of its last CR/LF, and where its last character starts.
  let p = pos;
  let lastCharStart = pos;
  let afterLastNewline = -1;
  while (p < end) {
    const c = bytes[p];
    const k = c < 0x80 ? ASCII[c] : charClass(codePointAt(bytes, p, c));
    if (k === CharClass.Newline) afterLastNewline = p + 1;
    else if (k !== CharClass.Space) break;
    lastCharStart = p;
    p += sequenceLength(c);
  }
  // 5: whitespace up to and including the last CR/LF of the run.
  if (afterLastNewline !== -1) return afterLastNewline;
  // 6: the whole run at the end of the text; otherwise all but its last character, if that leaves any.
  if (p === end || lastCharStart === pos) return p;
  return lastCharStart;
}

/** The pieces of `bytes[start, end)` as [start, end) byte offsets, for tests and tools. */
export function pieceBoundaries(bytes: Uint8Array, start: number, end: number): number[] {
  const bounds = [start];
  for (let pos = start; pos < end; ) {
    pos = pieceEnd(bytes, pos, end);
    bounds.push(pos);
  }
  return bounds;
}
