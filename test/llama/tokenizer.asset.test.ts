// The vocabulary readers and the edge asset: the asset built from the registry tokenizer.json is
// identical, rank for rank, to Meta's tokenizer.model; all loaders give the same tokenizer.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RankTable, RankTableFormatError } from "../../src/llama/rank-table.js";
import { Tokenizer } from "../../src/llama/tokenizer.js";
import { VocabularyError } from "../../src/llama/vocab-sources.js";
import { DEFAULT_TOKENIZER_ASSET_PATH, loadDefaultTokenizer } from "../../src/node/tokenizer-asset.js";
import { hasShared, HF_TOKENIZER_JSON_PATH, TOKENIZER_MODEL_PATH, tokenizer } from "./tokenizer-fixtures.js";

const hfJson = readFileSync(HF_TOKENIZER_JSON_PATH, "utf8");
const fromHf = Tokenizer.fromHuggingFaceJson(hfJson);

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

describe.skipIf(!hasShared)("against Meta's tokenizer.model", () => {
  it("the built asset has every rank's bytes exactly as tokenizer.model lists them", async () => {
    const asset = await loadDefaultTokenizer();
    const lines = readFileSync(TOKENIZER_MODEL_PATH, "utf8").split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(128000);
    for (const line of lines) {
      const [token, rank] = line.split(" ");
      if (base64(asset.tokenBytes(Number(rank))) !== token) {
        expect.fail(`rank ${rank}: asset has ${base64(asset.tokenBytes(Number(rank)))}, tokenizer.model has ${token}`);
      }
    }
  });

  it("fromTiktokenModel, fromHuggingFaceJson and the asset serialise to the same bytes", async () => {
    const fromModel = Tokenizer.fromTiktokenModel(readFileSync(TOKENIZER_MODEL_PATH, "utf8"));
    const asset = readFileSync(DEFAULT_TOKENIZER_ASSET_PATH);
    expect(Buffer.from(fromModel.toData()).equals(asset)).toBe(true);
    expect(Buffer.from(fromHf.toData()).equals(asset)).toBe(true);
  });

  it("fromFile recognises all three formats", async () => {
    const text = "Zürich 日本語 <|eot_id|> 12345";
    const expected = tokenizer().encode(text, { bos: true, eos: false });
    for (const path of [TOKENIZER_MODEL_PATH, HF_TOKENIZER_JSON_PATH, DEFAULT_TOKENIZER_ASSET_PATH]) {
      expect((await Tokenizer.fromFile(path)).encode(text, { bos: true, eos: false }), path).toEqual(expected);
    }
  });
});

describe("edge asset", () => {
  it("round-trips through toData / fromData (ArrayBuffer and unaligned Uint8Array)", () => {
    const data = fromHf.toData();
    const fromBuffer = Tokenizer.fromData(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);
    const unaligned = new Uint8Array(data.length + 1).subarray(1);
    unaligned.set(data);
    const fromUnaligned = Tokenizer.fromData(unaligned);
    const text = "The asset loads as typed-array views. 😀";
    const expected = fromHf.encode(text, { bos: false, eos: false });
    expect(fromBuffer.encode(text, { bos: false, eos: false })).toEqual(expected);
    expect(fromUnaligned.encode(text, { bos: false, eos: false })).toEqual(expected);
  });

  it("rejects corrupt data with a clear error", () => {
    const data = fromHf.toData();
    expect(() => Tokenizer.fromData(new Uint8Array(10))).toThrow(/shorter than its header/);
    expect(() => Tokenizer.fromData(new Uint8Array(64))).toThrow(/bad magic/);
    const wrongVersion = data.slice();
    wrongVersion[4] = 99;
    expect(() => Tokenizer.fromData(wrongVersion)).toThrow(/version 99 is not supported/);
    expect(() => Tokenizer.fromData(data.slice(0, data.length - 4))).toThrow(RankTableFormatError);
    const badHeader = data.slice();
    new Uint32Array(badHeader.buffer, 0, 8)[5] = 1 << 20; // maxTokenLength
    expect(() => Tokenizer.fromData(badHeader)).toThrow(/maxTokenLength 1048576 is out of range/);
    const badOffsets = data.slice();
    new Uint32Array(badOffsets.buffer, 32 + 4 * 1715, 1)[0] = 0; // token 1715 now starts before token 1714 ends (both are long tokens, read through offsets)
    const corrupt = Tokenizer.fromData(badOffsets); // O(1) load: only the structure is checked
    expect(() => corrupt.decode([1714])).toThrow(/corrupt rank table: token 1714 has length/);
    expect(() => corrupt.decode([1715])).toThrow(/corrupt rank table: token 1715 has length/);
    const noEmptySlot = data.slice();
    const header = new Uint32Array(noEmptySlot.buffer, 0, 8);
    const slots = new Uint32Array(noEmptySlot.buffer, 32 + 4 * (header[2] + 1), 2 << header[3]);
    for (let i = 1; i < slots.length; i += 2) if (slots[i] === 0) slots[i] = 1;
    // Every probe sequence now runs through the whole table; lookups must still end.
    expect(Tokenizer.fromData(noEmptySlot).encode("zq", { bos: false, eos: false })).toBeInstanceOf(Array);
    expect(() => Tokenizer.fromData("abc" as unknown as Uint8Array)).toThrow(/ArrayBuffer or a Uint8Array/);
  });

  it("a table without every single byte is not a Llama 3 vocabulary", () => {
    const tokens = Array.from({ length: 128000 }, (_, i) => new TextEncoder().encode(`t${i}`));
    expect(() => Tokenizer.fromData(RankTable.build(tokens).toBytes())).toThrow(/lacks the single byte 0x0/);
  });
});

describe("vocabulary readers reject other vocabularies", () => {
  it("tokenizer.model with missing ranks", () => {
    expect(() => Tokenizer.fromTiktokenModel("IQ== 0\nIg== 1\n")).toThrow(/has 2 ranks, a Llama 3 vocabulary has 128000/);
    expect(() => Tokenizer.fromTiktokenModel("IQ== 128000\n")).toThrow(VocabularyError);
  });

  it("tokenizer.json that is not byte-level BPE over the Llama 3 pattern", () => {
    expect(() => Tokenizer.fromHuggingFaceJson("{")).toThrow(/not valid JSON/);
    expect(() => Tokenizer.fromHuggingFaceJson({ model: { type: "Unigram", vocab: {} } })).toThrow(/tokenizer.json: model.type/);
    expect(() =>
      Tokenizer.fromHuggingFaceJson({
        model: { type: "BPE", vocab: {} },
        pre_tokenizer: { type: "Split", pattern: { Regex: "\\s+" } },
      }),
    ).toThrow(/split pattern is not Llama 3's/);
    expect(() => Tokenizer.fromHuggingFaceJson({ model: { type: "BPE", vocab: { "\u4e00": 0 } } })).toThrow(/not byte-level BPE/);
  });
});
