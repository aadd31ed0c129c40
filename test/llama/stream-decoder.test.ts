// The streaming decoder: its outputs concatenate to decode(allIds), and it never shows U+FFFD for a
// character that later tokens complete.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tokenizer } from "./tokenizer-fixtures.js";

function streamAll(ids: readonly number[]): string[] {
  const stream = tokenizer().createStreamDecoder();
  const outputs = ids.map((id) => stream.push(id));
  outputs.push(stream.flush());
  return outputs;
}

describe("StreamDecoder", () => {
  it("😀 = [76460, 222]: nothing, then the whole character (llama-reference.md §1.7)", () => {
    expect(streamAll([76460, 222])).toEqual(["", "😀", ""]);
    // decode of the first id alone is U+FFFD; the stream waits instead.
    expect(tokenizer().decode([76460])).toBe("\ufffd");
  });

  it("flush gives U+FFFD for an incomplete character at the end", () => {
    expect(streamAll([76460])).toEqual(["", "\ufffd"]);
  });

  it("concatenated outputs === decode for arbitrary id sequences (partial UTF-8, specials)", () => {
    const tok = tokenizer();
    // Ids below 256 are mostly the single bytes, which include every lead and continuation byte.
    const id = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 128255 }), fc.constantFrom(76460, 222, 128009));
    fc.assert(
      fc.property(fc.array(id, { maxLength: 40 }), (ids) => {
        expect(streamAll(ids).join("")).toBe(tok.decode(ids));
      }),
      { numRuns: 2000 },
    );
  });

  it("on encoded text: each output is a prefix extension without U+FFFD", () => {
    const tok = tokenizer();
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 100 }), (text) => {
        const outputs = streamAll(tok.encode(text, { bos: false, eos: false }));
        expect(outputs.join("")).toBe(text);
        if (!text.includes("\ufffd")) for (const out of outputs) expect(out).not.toContain("\ufffd");
      }),
      { numRuns: 1000 },
    );
  });

  it("can be reused after flush", () => {
    const stream = tokenizer().createStreamDecoder();
    expect(stream.push(76460)).toBe("");
    expect(stream.flush()).toBe("\ufffd");
    expect(stream.push(76460)).toBe("");
    expect(stream.push(222)).toBe("😀");
  });

  it("rejects ids outside the vocabulary", () => {
    const stream = tokenizer().createStreamDecoder();
    expect(() => stream.push(128256)).toThrow(/128256 is not a token id/);
  });
});
