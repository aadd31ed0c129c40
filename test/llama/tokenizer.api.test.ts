// Tokenizer API behaviour: special-token options, errors for bad input, ids and constants.

import { describe, expect, it } from "vitest";
import {
  BOS_ID,
  EOM_ID,
  EOS_ID,
  EOT_ID,
  FINETUNE_RIGHT_PAD_ID,
  NUM_BASE_TOKENS,
  PYTHON_TAG_ID,
  SPECIAL_TOKEN_NAMES,
  STOP_TOKENS,
  VOCAB_SIZE,
} from "../../src/llama/special-tokens.js";
import { DisallowedSpecialTokenError } from "../../src/llama/tokenizer.js";
import { tokenizer } from "./tokenizer-fixtures.js";

const plain = { bos: false, eos: false } as const;
// "<|eot_id|>" as plain text (golden vector `encode`): the ids a special token spells out as text.
const EOT_AS_TEXT = [27, 91, 68, 354, 851, 91, 29];

describe("special tokens in the input", () => {
  it("are plain text by default and never produce special ids", () => {
    const tok = tokenizer();
    expect(tok.encode("<|eot_id|>", plain)).toEqual(EOT_AS_TEXT);
    for (const name of SPECIAL_TOKEN_NAMES) {
      expect(tok.encode(`x${name}y`, plain).every((id) => id < NUM_BASE_TOKENS)).toBe(true);
    }
  });

  it("allowedSpecial as a list recognises only the listed tokens", () => {
    const tok = tokenizer();
    const ids = tok.encode("<|eot_id|><|eom_id|>", { ...plain, allowedSpecial: ["<|eom_id|>"] });
    expect(ids).toEqual([...EOT_AS_TEXT, EOM_ID]);
  });

  it("recognises a special token that overlaps a disallowed-looking prefix", () => {
    // "<|" opens twice; only the second opening completes a token (tiktoken resumes at match + 1).
    const tok = tokenizer();
    expect(tok.encode("<|<|eot_id|>", { ...plain, allowedSpecial: "all" })).toEqual([
      ...tok.encode("<|", plain),
      EOT_ID,
    ]);
  });

  it("a Set works like a list (tiktoken takes sets)", () => {
    const tok = tokenizer();
    const allowed = new Set(["<|eom_id|>"]) as unknown as readonly string[];
    expect(tok.encode("<|eot_id|><|eom_id|>", { ...plain, allowedSpecial: allowed })).toEqual([...EOT_AS_TEXT, EOM_ID]);
  });

  it("disallowedSpecial: 'all' throws DisallowedSpecialTokenError naming the token", () => {
    const tok = tokenizer();
    let error: unknown;
    try {
      tok.encode("hello <|python_tag|> world", { ...plain, disallowedSpecial: "all" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DisallowedSpecialTokenError);
    expect((error as DisallowedSpecialTokenError).token).toBe("<|python_tag|>");
    expect((error as Error).message).toMatch(/disallowed special token "<\|python_tag\|>"/);
  });

  it("disallowedSpecial: 'all' excludes the allowed ones (tiktoken's set difference)", () => {
    const tok = tokenizer();
    expect(tok.encode("a<|eot_id|>", { ...plain, allowedSpecial: ["<|eot_id|>"], disallowedSpecial: "all" })).toEqual([
      64,
      EOT_ID,
    ]);
    expect(() => tok.encode("a<|eom_id|>", { ...plain, allowedSpecial: ["<|eot_id|>"], disallowedSpecial: "all" })).toThrow(
      DisallowedSpecialTokenError,
    );
  });

  it("an explicit disallowed list wins over allowedSpecial, as in tiktoken", () => {
    const tok = tokenizer();
    expect(() => tok.encode("<|eot_id|>", { ...plain, allowedSpecial: "all", disallowedSpecial: ["<|eot_id|>"] })).toThrow(
      DisallowedSpecialTokenError,
    );
    expect(tok.encode("<|eom_id|>", { ...plain, disallowedSpecial: ["<|eot_id|>"] })).toEqual(tok.encode("<|eom_id|>", plain));
  });

  it("a special token straddling a 25,000-character cut is neither recognised nor checked (§1.6)", () => {
    const tok = tokenizer();
    // The non-space run a…a<|eot_id|> is cut after 25,000 code points, inside the special token.
    const head = "a".repeat(24_995) + "<|eot"; // 25,000 code points
    const tail = "_id|>";
    const text = head + tail;
    const expected = [...tok.encode(head, plain), ...tok.encode(tail, plain)];
    expect(tok.encode(text, { ...plain, allowedSpecial: "all" })).toEqual(expected);
    expect(tok.encode(text, { ...plain, disallowedSpecial: "all" })).toEqual(expected);
  });

  it("bos and eos add 128000 and 128001 (end_of_text, not eot)", () => {
    const tok = tokenizer();
    expect(tok.encode("", { bos: true, eos: true })).toEqual([BOS_ID, EOS_ID]);
    expect(tok.encode("hi", { bos: true, eos: false })[0]).toBe(128000);
    expect(tok.encode("hi", { bos: false, eos: true }).at(-1)).toBe(128001);
  });
});

describe("bad input gives clear errors", () => {
  const tok = tokenizer();
  it("encode", () => {
    expect(() => tok.encode(42 as unknown as string, plain)).toThrow(/text must be a string, got 42/);
    expect(() => tok.encode("x", undefined as unknown as typeof plain)).toThrow(/options \{ bos, eos \} are required/);
    expect(() => tok.encode("x", { bos: true } as unknown as typeof plain)).toThrow(/options.eos must be a boolean/);
    expect(() => tok.encode("x", { ...plain, allowedSpecial: ["<|eot|>"] })).toThrow(
      /options.allowedSpecial\[0\] = "<\|eot\|>" is not a Llama 3 special token/,
    );
    expect(() => tok.encode("x", { ...plain, disallowedSpecial: "none" as unknown as "all" })).toThrow(/options.disallowedSpecial/);
  });

  it("decode", () => {
    expect(() => tok.decode([1, 128256])).toThrow(/ids\[1\] = 128256 is not a token id/);
    expect(() => tok.decode([-1])).toThrow(/ids\[0\] = -1/);
    expect(() => tok.decode([1.5])).toThrow(/ids\[0\] = 1.5/);
    expect(() => tok.decode(["5" as unknown as number])).toThrow(/ids\[0\] = "5"/);
    expect(() => tok.decode("abc" as unknown as number[])).toThrow(/must be an array/);
  });

  it("tokenBytes", () => {
    expect(() => tok.tokenBytes(VOCAB_SIZE)).toThrow(/not a token id/);
  });
});

describe("ids, bytes and constants", () => {
  const tok = tokenizer();
  it("attributes match llama-models HEAD (§1.4)", () => {
    expect([tok.bosId, tok.eosId, tok.eotId, tok.eomId, tok.pythonTagId, tok.padId, tok.vocabSize]).toEqual([
      128000, 128001, 128009, 128008, 128010, 128004, 128256,
    ]);
    expect([BOS_ID, EOS_ID, EOT_ID, EOM_ID, PYTHON_TAG_ID, FINETUNE_RIGHT_PAD_ID]).toEqual([
      128000, 128001, 128009, 128008, 128010, 128004,
    ]);
    expect(tok.stopTokens).toEqual([128001, 128008, 128009]);
    expect(STOP_TOKENS).toEqual([128001, 128008, 128009]);
    expect(Object.keys(tok.specialTokens)).toHaveLength(256);
  });

  it("single bytes from §1.1: '!' = 0, '\\n' = 198, ' ' = 220, 0x00 = 188, 0xFF = 187", () => {
    expect(tok.tokenBytes(0)).toEqual(new Uint8Array([0x21]));
    expect(tok.tokenBytes(198)).toEqual(new Uint8Array([0x0a]));
    expect(tok.tokenBytes(220)).toEqual(new Uint8Array([0x20]));
    expect(tok.tokenBytes(188)).toEqual(new Uint8Array([0x00]));
    expect(tok.tokenBytes(187)).toEqual(new Uint8Array([0xff]));
    expect(new TextDecoder().decode(tok.tokenBytes(EOT_ID))).toBe("<|eot_id|>");
    expect(tok.decodeBytes([76460, 222])).toEqual(new TextEncoder().encode("😀"));
  });

  it("decode keeps a leading U+FEFF (Python's utf-8 codec does not strip a BOM)", () => {
    expect(tok.decode(tok.encode("\ufeffhi", plain))).toBe("\ufeffhi");
  });
});
