// The hand-written pre-tokenizer scanner against the split regex (run by V8's regex engine), and the
// byte-level long-input cuts against the string-level port of the reference's splitter.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { longInputCuts, splitWhitespacesOrNonWhitespaces } from "../../src/llama/long-input.js";
import { pieceBoundaries } from "../../src/llama/pretokenize.js";
import { splitPiecesWithRegex } from "../../src/llama/split-regex.js";
import { wellFormed } from "./tokenizer-fixtures.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

function scannerPieces(text: string): string[] {
  const bytes = encoder.encode(text);
  const bounds = pieceBoundaries(bytes, 0, bytes.length);
  return bounds.slice(1).map((end, i) => decoder.decode(bytes.subarray(bounds[i], end)));
}

/**
 * Characters where the three whitespace definitions, the letter/number classes and the contraction
 * rules disagree or interact: every White_Space code point, U+FEFF and U+001C–U+001F (not
 * White_Space), case variants and U+017F for the contractions, letters and numbers from several
 * scripts (Nd, Nl, No), combining marks, CJK, emoji with modifiers and ZWJ, punctuation.
 */
const TRICKY = [
  ..."aZéßſ'sStTrReEvVmMlLdD0123456789",
  "\u0663", "\u216b", "\u00bd", "\u00b2",
  " ", "\t", "\n", "\r", "\v", "\f", "\u0085", "\u00a0", "\u1680", "\u2000", "\u2005", "\u200a",
  "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "\u001c", "\u001d", "\u001e", "\u001f",
  "\u200b", "\u200d", "\u0301", "\u0308", "中", "日", "あ", "한", "я", "ع", "😀", "👍", "🏽", "\u{1d7d8}", "\u{10400}",
  ..."!.,\"<|>_-#(){}[]/\\*+=:;?`~@$%^&",
];

const trickyText = fc.array(fc.constantFrom(...TRICKY), { maxLength: 60 }).map((cs) => cs.join(""));
const anyText = fc.string({ unit: "binary", maxLength: 80 });
const withLoneSurrogates = fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)), maxLength: 20 });

describe("pre-tokenizer scanner === split regex", () => {
  it("on strings of tricky characters", () => {
    fc.assert(
      fc.property(trickyText, (text) => {
        expect(scannerPieces(text)).toEqual(splitPiecesWithRegex(text));
      }),
      { numRuns: 3000 },
    );
  });

  it("on arbitrary Unicode strings", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(scannerPieces(text)).toEqual(splitPiecesWithRegex(text));
      }),
      { numRuns: 2000 },
    );
  });

  it("on strings with lone surrogates (which UTF-8 turns into U+FFFD first)", () => {
    fc.assert(
      fc.property(fc.tuple(trickyText, withLoneSurrogates, trickyText), ([a, b, c]) => {
        const text = a + b + c;
        expect(scannerPieces(text)).toEqual(splitPiecesWithRegex(wellFormed(text)));
      }),
      { numRuns: 500 },
    );
  });

  it("documented examples", () => {
    // llama-reference.md §1.2: digits in runs of at most 3; the last space goes to the next piece.
    expect(scannerPieces("12345678")).toEqual(["123", "456", "78"]);
    expect(scannerPieces("a  b")).toEqual(["a", " ", " b"]);
    expect(scannerPieces("a \ufeff b")).toEqual(["a", " \ufeff", " b"]);
    expect(scannerPieces("don't DON'T we'VE")).toEqual(["don", "'t", " DON", "'T", " we", "'VE"]);
    // Rust's case-insensitive `'s` also matches U+017F (§1.2), so the letters after it are a new piece.
    expect(scannerPieces("'ſab")).toEqual(["'ſ", "ab"]);
  });

  it("on strings dense in apostrophes and contraction letters", () => {
    const fragments = ["'", "'", "s", "S", "ſ", "t", "T", "re", "rE", "VE", "ll", "lL", "d", "D", "m", "a", "x", " ", "1", "\n"];
    const text = fc.array(fc.constantFrom(...fragments), { maxLength: 30 }).map((fs) => fs.join(""));
    fc.assert(
      fc.property(text, (t) => {
        expect(scannerPieces(t)).toEqual(splitPiecesWithRegex(t));
      }),
      { numRuns: 2000 },
    );
  });
});

/** The reference's cuts computed with the string-level port, as code point lengths. */
function referencePieceLengths(text: string): number[] {
  const chars = Array.from(text);
  const lengths: number[] = [];
  for (let i = 0; i < Math.max(chars.length, 1); i += 400_000) {
    for (const piece of splitWhitespacesOrNonWhitespaces(chars.slice(i, i + 400_000).join(""), 25_000)) {
      lengths.push(Array.from(piece).length);
    }
  }
  return lengths;
}

function cutLengths(text: string): number[] {
  const bytes = encoder.encode(text);
  const cuts = longInputCuts(bytes, 0, bytes.length);
  return cuts.slice(1).map((end, i) => Array.from(decoder.decode(bytes.subarray(cuts[i], end))).length);
}

describe("long-input cuts on bytes === the reference splitter on code points", () => {
  // Runs whose lengths straddle 25,000, of characters whose class differs between Python isspace,
  // White_Space and JS \s; astral characters make UTF-16 and code point counts differ.
  const runChar = fc.constantFrom("a", " ", "\u0085", "\ufeff", "\u001c", "\u3000", "😀", "é", "\n");
  const run = fc.tuple(runChar, fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 24_990, max: 25_010 })));
  it("for runs near the 25,000 threshold", () => {
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 4 }), (runs) => {
        const text = runs.map(([c, n]) => c.repeat(n)).join("");
        expect(cutLengths(text)).toEqual(referencePieceLengths(text));
      }),
      { numRuns: 40 },
    );
  });

  it("across the 400,000-code-point slice boundary, counting code points not UTF-16 units", () => {
    const text = "ab😀 ".repeat(100_001);
    expect(cutLengths(text)).toEqual(referencePieceLengths(text));
    expect(cutLengths(text)).toEqual([400_000, 4]);
  });

  it("for the empty string: one empty piece", () => {
    expect(cutLengths("")).toEqual([0]);
  });
});
