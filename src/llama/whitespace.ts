/**
 * The two definitions of whitespace the text path needs, kept side by side because they differ on purpose and
 * a port goes wrong when one stands in for the other:
 *  - Unicode White_Space: what the pre-tokenizer's `\s` matches (Rust `fancy-regex`, pretokenize.ts);
 *  - Python `str.isspace()` (bidirectional class WS/B/S or category Zs): what the reference's long-input
 *    splitting (long-input.ts) and Jinja's `strip` use. It is White_Space plus the four information separators
 *    U+001C–U+001F.
 * Both differ from ECMAScript `\s`, which adds U+FEFF. Above ASCII the two agree, so that list is written once.
 */

/** White_Space above ASCII (all below U+10000: astral code points are never whitespace). */
function isNonAsciiWhiteSpace(cp: number): boolean {
  return (
    cp === 0x85 ||
    cp === 0xa0 ||
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000
  );
}

/** Unicode White_Space for one code point (regex `\s` in the pre-tokenizer's engine). */
export function isWhiteSpace(cp: number): boolean {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0d) || cp === 0x20;
  return isNonAsciiWhiteSpace(cp);
}

/** Python `str.isspace()` for one code point: White_Space plus U+001C–U+001F. */
export function isPythonSpace(cp: number): boolean {
  if (cp <= 0x20) return (cp >= 0x09 && cp <= 0x0d) || cp >= 0x1c;
  if (cp < 0x85) return false;
  return isNonAsciiWhiteSpace(cp);
}
