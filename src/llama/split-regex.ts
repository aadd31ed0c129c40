/**
 * The Llama 3 pre-tokenizer regex, translated to an ECMAScript RegExp with the semantics of the Rust
 * `fancy-regex` engine tiktoken uses. The tokenizer itself runs the hand-written scanner in
 * `pretokenize.ts`; this regex is kept as the independent, readable definition the scanner is
 * cross-checked against in tests.
 */

/** The pattern exactly as the reference writes it (Python/Rust syntax). */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Unicode White_Space, which is what `\s` means in Rust regex. ECMAScript's `\s` differs: it adds
 * U+FEFF and drops U+0085.
 */
export const WHITE_SPACE_CLASS =
  "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const S = `[${WHITE_SPACE_CLASS}]`;
const NOT_S = `[^${WHITE_SPACE_CLASS}]`;

/**
 * `(?i:…)` only affects the contractions. Rust's case-insensitive matching uses Unicode simple case
 * folding, under which U+017F LATIN SMALL LETTER LONG S also matches `s`; no other code point folds
 * onto these ASCII letters.
 */
const CONTRACTIONS = "'[sS\\u017f]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";

/** The ECMAScript source equivalent to {@link LLAMA3_SPLIT_PATTERN} (use with the `u` flag). */
export const LLAMA3_SPLIT_REGEX_SOURCE = [
  CONTRACTIONS,
  "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+",
  "\\p{N}{1,3}",
  ` ?[^${WHITE_SPACE_CLASS}\\p{L}\\p{N}]+[\\r\\n]*`,
  `${S}*[\\r\\n]+`,
  `${S}+(?!${NOT_S})`,
  `${S}+`,
].join("|");

/** A fresh global, Unicode-aware RegExp for the Llama 3 split pattern. */
export function createLlama3SplitRegex(): RegExp {
  return new RegExp(LLAMA3_SPLIT_REGEX_SOURCE, "gu");
}

/** Splits `text` into pre-tokenizer pieces with the regex (slow reference path). */
export function splitPiecesWithRegex(text: string): string[] {
  return Array.from(text.matchAll(createLlama3SplitRegex()), (m) => m[0]);
}
