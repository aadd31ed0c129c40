// The tokenizer against independent implementations: js-tiktoken (its own regex + BPE over the same
// ranks), tiktoken's quadratic merge against our heap merge, and round-trip properties.

import { readFileSync } from "node:fs";
import fc from "fast-check";
import { Tiktoken } from "js-tiktoken/lite";
import { describe, expect, it } from "vitest";
import { BytePairEncoder } from "../../src/llama/bpe.js";
import { splitWhitespacesOrNonWhitespaces } from "../../src/llama/long-input.js";
import { RankTable } from "../../src/llama/rank-table.js";
import { SPECIAL_TOKEN_NAMES, NUM_BASE_TOKENS } from "../../src/llama/special-tokens.js";
import { LLAMA3_SPLIT_REGEX_SOURCE } from "../../src/llama/split-regex.js";
import { parseHuggingFaceTokenizerJson } from "../../src/llama/vocab-sources.js";
import { hasShared, HF_TOKENIZER_JSON_PATH, TOKENIZER_MODEL_PATH, tokenizer, wellFormed } from "./tokenizer-fixtures.js";

/**
 * js-tiktoken over the Llama 3 ranks. Its rank format is `! <first rank> <base64 token> ...`; the
 * base64 comes straight from Meta's tokenizer.model when present (so this also checks our readers),
 * otherwise from the registry tokenizer.json.
 */
function jsTiktoken(): Tiktoken {
  let base64Tokens: string[];
  if (hasShared) {
    const lines = readFileSync(TOKENIZER_MODEL_PATH, "utf8").split("\n").filter((l) => l.trim() !== "");
    base64Tokens = lines.map((line, i) => {
      const [token, rank] = line.split(" ");
      if (Number(rank) !== i) throw new Error(`tokenizer.model line ${i} has rank ${rank}`);
      return token;
    });
  } else {
    base64Tokens = parseHuggingFaceTokenizerJson(readFileSync(HF_TOKENIZER_JSON_PATH, "utf8")).map((bytes) =>
      btoa(String.fromCharCode(...bytes)),
    );
  }
  return new Tiktoken({
    pat_str: LLAMA3_SPLIT_REGEX_SOURCE,
    special_tokens: Object.fromEntries(SPECIAL_TOKEN_NAMES.map((name, i) => [name, NUM_BASE_TOKENS + i])),
    bpe_ranks: `! 0 ${base64Tokens.join(" ")}`,
  });
}

const reference = jsTiktoken();
const plain = { bos: false, eos: false } as const;

const WORDS = [
  "the", " quick", "Brown", " fox", "’s", "'ll", "don't", "naïve", "straße", "Ærøskøbing", "Привет", "мир", "日本語", "の",
  "テキスト", "中文分词", "한국어", "مرحبا", "नमस्ते", "สวัสดี", "Ελληνικά", "😀", "👍🏽", "👨‍👩‍👧", "\u0301", "123456",
  "3.14159", "1,000,000", "٣٤٥", "Ⅻ", "½", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "\u00a0", "\u3000", "\u2028",
  "\ufeff", "\u0085", "\u001c", "{\"a\": [1, 2]}", "<|eot_id|>", "<|begin_of_text|>", "fn main() {", "    return x;",
  "!!!", "...", "—", "«»", "$€£", "#", "@user", "https://example.com/a?b=c", "x".repeat(40), " ".repeat(17),
];
const wordSoup = fc.array(fc.constantFrom(...WORDS), { maxLength: 30 }).map((ws) => ws.join(""));

describe("js-tiktoken cross-check (same ranks, its own regex and BPE)", () => {
  it("word soup in many scripts", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(wordSoup, (text) => {
        expect(tok.encode(text, plain)).toEqual(reference.encode(text, [], []));
      }),
      { numRuns: 1500 },
    );
  });

  it("arbitrary Unicode", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 60 }), (text) => {
        expect(tok.encode(text, plain)).toEqual(reference.encode(text, [], []));
      }),
      { numRuns: 1500 },
    );
  });

  it("with allowedSpecial: 'all'", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(wordSoup, (text) => {
        expect(tok.encode(text, { ...plain, allowedSpecial: "all" })).toEqual(reference.encode(text, "all", []));
      }),
      { numRuns: 300 },
    );
  });

  it("decode agrees on arbitrary id sequences, including partial UTF-8", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 128255 }), { maxLength: 20 }), (ids) => {
        expect(tok.decode(ids)).toBe(reference.decode(ids));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("BPE merge strategies make identical choices", () => {
  const table = RankTable.build(parseHuggingFaceTokenizerJson(readFileSync(HF_TOKENIZER_JSON_PATH, "utf8")));
  const bpe = new BytePairEncoder(table, table.singleByteRanks());
  const encoder = new TextEncoder();
  // Repetitive pieces produce many equal-rank pairs, which is where tie-breaking shows.
  const piece = fc.oneof(
    fc.array(fc.constantFrom("a", "b", " ", "é", "中", "😀", "0", "\n", "aa", "ab"), { minLength: 2, maxLength: 200 }).map((p) => p.join("")),
    fc.string({ unit: "binary", minLength: 2, maxLength: 100 }),
  );

  it("heap (long pieces) === tiktoken's rescan", () => {
    fc.assert(
      fc.property(piece, (text) => {
        const bytes = encoder.encode(text);
        const rescan: number[] = [];
        const heap: number[] = [];
        bpe.merge(bytes, 0, bytes.length, rescan, "rescan");
        bpe.merge(bytes, 0, bytes.length, heap, "heap");
        expect(heap).toEqual(rescan);
      }),
      { numRuns: 1000 },
    );
  });

  it("merges of single-letter runs (the pathological case) agree with js-tiktoken", () => {
    const tok = tokenizer();
    for (const text of ["a".repeat(1000), " ".repeat(700), "ab".repeat(400), "😀".repeat(200)]) {
      expect(tok.encode(text, plain)).toEqual(reference.encode(text, [], []));
    }
  });
});

describe("round trips", () => {
  it("decode(encode(s)) === s for well-formed strings", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 200 }), wordSoup), (text) => {
        expect(tok.decode(tok.encode(text, plain))).toBe(text);
        expect(tok.decode(tok.encode(text, { bos: false, eos: false, allowedSpecial: "all" }))).toBe(text);
      }),
      { numRuns: 1500 },
    );
  });

  it("lone surrogates encode as U+FFFD (tiktoken's replacement)", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(wordSoup, fc.integer({ min: 0xd800, max: 0xdfff }), wordSoup, (a, surrogate, b) => {
        const text = a + String.fromCharCode(surrogate) + b;
        expect(tok.encode(text, plain)).toEqual(tok.encode(wellFormed(text), plain));
        expect(tok.decode(tok.encode(text, plain))).toBe(wellFormed(text));
      }),
      { numRuns: 300 },
    );
  });
});

describe("long inputs: encode === concatenated encodes of the reference's pieces", () => {
  // The pieces come from the string-level port of the reference splitter (code points, Python
  // isspace); each is below the thresholds, so encoding it alone makes no further cut.
  function referenceEncode(text: string): number[] {
    const tok = tokenizer();
    const chars = Array.from(text);
    const ids: number[] = [];
    for (let i = 0; i < Math.max(chars.length, 1); i += 400_000) {
      for (const piece of splitWhitespacesOrNonWhitespaces(chars.slice(i, i + 400_000).join(""), 25_000)) {
        ids.push(...tok.encode(piece, plain));
      }
    }
    return ids;
  }

  it("runs of letters, spaces, U+0085 and emoji around 25,000 code points", () => {
    const tok = tokenizer();
    const runChar = fc.constantFrom("a", " ", "\u0085", "😀", "日", "\ufeff");
    const run = fc.tuple(runChar, fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 24_995, max: 25_005 })));
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 3 }), (runs) => {
        const text = runs.map(([c, n]) => c.repeat(n)).join("");
        expect(tok.encode(text, plain)).toEqual(referenceEncode(text));
      }),
      { numRuns: 12 },
    );
  });
});
