/**
 * The reference's long-input splitting (llama-reference.md §1.6). Before tiktoken sees the text, the
 * reference cuts it into 400,000-code-point slices and cuts every same-class run (Python
 * `str.isspace()` classes) longer than 25,000 code points. Each resulting piece is encoded on its own,
 * so this changes the ids and must be reproduced exactly.
 */

import { isPythonSpace } from "./whitespace.js";

export const TIKTOKEN_MAX_ENCODE_CHARS = 400_000;
export const MAX_NO_WHITESPACES_CHARS = 25_000;

/** `isPythonSpace` for the ASCII range, as a table for the byte loop below. */
const ASCII_SPACE = Uint8Array.from({ length: 128 }, (_, cp) => (isPythonSpace(cp) ? 1 : 0));

/**
 * Offsets (in UTF-8 bytes of `bytes[start, end)`) where the reference cuts the text: the
 * 400,000-code-point slice boundaries and the cuts inside over-long same-class runs. The returned list
 * starts with `start` and ends with `end`; consecutive entries delimit the pieces that are encoded
 * independently. `bytes` must be well-formed UTF-8 (as produced by `TextEncoder`).
 */
export function longInputCuts(bytes: Uint8Array, start: number, end: number): number[] {
  const cuts = [start];
  let sliceCodePoints = 0;
  let runLength = 0;
  let inSpace = false;
  let pos = start;
  while (pos < end) {
    const b = bytes[pos];
    let space: boolean;
    if (b < 0x80) {
      space = ASCII_SPACE[b] === 1;
    } else if (b < 0xc0) {
      pos++; // a continuation byte: not the start of a code point
      continue;
    } else if (b < 0xe0) {
      space = isPythonSpace(((b & 0x1f) << 6) | (bytes[pos + 1] & 0x3f));
    } else if (b < 0xf0) {
      space = isPythonSpace(((b & 0x0f) << 12) | ((bytes[pos + 1] & 0x3f) << 6) | (bytes[pos + 2] & 0x3f));
    } else {
      space = false; // astral code points are never Python whitespace
    }
    if (sliceCodePoints === TIKTOKEN_MAX_ENCODE_CHARS) {
      cuts.push(pos);
      sliceCodePoints = 0;
    }
    if (sliceCodePoints === 0) {
      // Each slice starts in the class of its first character with a run length of 0, so that
      // character counts as 1 like every other one.
      inSpace = space;
      runLength = 0;
    }
    if (space !== inSpace) {
      inSpace = space;
      runLength = 1;
    } else if (++runLength > MAX_NO_WHITESPACES_CHARS) {
      cuts.push(pos);
      runLength = 1;
    }
    sliceCodePoints++;
    pos++;
  }
  cuts.push(end);
  return cuts;
}

/**
 * `_split_whitespaces_or_nonwhitespaces(s, max_consecutive_slice_len)` on a JS string, counting code
 * points like Python. Used by tests against the golden `split_pieces`; the encoder uses
 * {@link longInputCuts} on bytes.
 */
export function splitWhitespacesOrNonWhitespaces(s: string, maxConsecutiveSliceLen: number): string[] {
  const chars = Array.from(s);
  const pieces: string[] = [];
  let currentSliceLen = 0;
  let currentSliceIsSpace = chars.length > 0 && isPythonSpace(chars[0].codePointAt(0)!);
  let sliceStart = 0;
  for (let i = 0; i < chars.length; i++) {
    const isNowSpace = isPythonSpace(chars[i].codePointAt(0)!);
    if (currentSliceIsSpace !== isNowSpace) {
      currentSliceLen = 1;
      currentSliceIsSpace = isNowSpace;
    } else {
      currentSliceLen++;
      if (currentSliceLen > maxConsecutiveSliceLen) {
        pieces.push(chars.slice(sliceStart, i).join(""));
        sliceStart = i;
        currentSliceLen = 1;
      }
    }
  }
  pieces.push(chars.slice(sliceStart).join(""));
  return pieces;
}
