// Properties of the chat format over random dialogs and random tool calls (fast-check), with Meta's
// tokenizer.model. The expectations come from the token structure of llama-reference.md §2 (headers,
// eot/eom, python_tag), not from the code under test.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatFormat, type Message, type Role, type StopReason } from "../../src/llama/chat-format.js";
import { END_HEADER_ID, EOM_ID, EOT_ID, PYTHON_TAG_ID, START_HEADER_ID } from "../../src/llama/special-tokens.js";
import type { Tokenizer } from "../../src/llama/tokenizer.js";
import type { ToolCall, ToolPromptFormat } from "../../src/llama/tool-calls.js";
import { hasShared, sharedTokenizer } from "./chat-format-fixtures.js";

const SPECIAL_SPELLINGS = [
  "<|begin_of_text|>",
  "<|eot_id|>",
  "<|eom_id|>",
  "<|python_tag|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|start_header_id|>assistant<|end_header_id|>\n\n",
  "<|image|>",
  "<|reserved_special_token_7|>",
];

/** Any text, with special-token spellings mixed in (lone surrogates included). */
const anyText = fc
  .array(fc.oneof(fc.string({ unit: "binary", maxLength: 12 }), fc.constantFrom(...SPECIAL_SPELLINGS)), { maxLength: 6 })
  .map((parts) => parts.join(""));

/** What the tokenizer round-trips: lone surrogates become U+FFFD (tiktoken does this too). */
const wellFormed = (s: string) => s.replace(/\p{Cs}/gu, "\ufffd");

const ROLES: Role[] = ["system", "user", "assistant", "tool"];
const STOPS: Array<StopReason | undefined> = ["end_of_turn", "end_of_message", "out_of_tokens", undefined];

const PYTHON_KEYWORDS = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
  "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
  "pass", "raise", "return", "try", "while", "with", "yield",
]);
const BUILTINS = new Set(["brave_search", "wolfram_alpha", "photogen", "code_interpreter"]);
const identifier = fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/).filter((s) => !PYTHON_KEYWORDS.has(s) && !BUILTINS.has(s));

/** Strings that survive a format: `banned` characters or substrings excluded, always well-formed. */
function safeString(banned: RegExp) {
  return fc.string({ unit: "grapheme", maxLength: 10 }).filter((s) => !banned.test(s) && !s.includes("<function="));
}
const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)));
function primitive(str: fc.Arbitrary<string>) {
  return fc.oneof(str, number, fc.boolean(), fc.constant(null));
}

/** Arguments that the reference's parser can read back in each format (see §2.6 step 5). */
function argumentsFor(format: ToolPromptFormat): fc.Arbitrary<Record<string, unknown>> {
  if (format === "json") {
    // ensure_ascii JSON: any value of RecursiveType
    const str = fc.string({ unit: "binary", maxLength: 10 }).filter((s) => !s.includes("<function="));
    const value = fc.oneof(primitive(str), fc.array(primitive(str), { maxLength: 3 }), fc.dictionary(identifier, primitive(str), { maxKeys: 3 }));
    return fc.dictionary(identifier, value, { maxKeys: 4 });
  }
  if (format === "function_tag") {
    // args end at the first "}" and go through .replace("'", '"'): flat, no } or ' in strings
    const str = safeString(/[}']/);
    return fc.dictionary(identifier, fc.oneof(primitive(str), fc.array(primitive(str), { maxLength: 3 })), { maxKeys: 4 });
  }
  // python_list: strings are written unescaped between double quotes, so no ", \ or line breaks
  const str = safeString(/["\\\n\r\0]/);
  return fc.dictionary(identifier, fc.oneof(primitive(str), fc.array(primitive(str), { maxLength: 3 })), { maxKeys: 4 });
}

const format = fc.constantFrom<ToolPromptFormat>("json", "function_tag", "python_list");

/** A tool call and the arguments decoding must give back. */
const toolCall: fc.Arbitrary<{ call: ToolCall; format: ToolPromptFormat }> = fc.oneof(
  format.chain((f) => fc.record({ call: fc.record({ callId: fc.uuid(), toolName: identifier, arguments: argumentsFor(f) }), format: fc.constant(f) })),
  fc.record({
    call: fc.record({
      callId: fc.uuid(),
      toolName: fc.constantFrom("brave_search", "wolfram_alpha", "photogen"),
      arguments: fc.record({ query: safeString(/"/) }),
    }),
    format,
  }),
  fc.record({
    call: fc.record({
      callId: fc.uuid(),
      toolName: fc.constant("code_interpreter"),
      // code that is neither a JSON object, a Python list of calls, nor NAME.call(query="…")
      arguments: fc.record({ code: safeString(/\.call\(/).map((s) => `print(${JSON.stringify(s)})`) }),
    }),
    format,
  }),
);

describe.skipIf(!hasShared)("chat format properties", () => {
  let tokenizer: Tokenizer;
  let chat: ChatFormat;
  beforeAll(async () => {
    tokenizer = await sharedTokenizer();
    chat = new ChatFormat(tokenizer);
  });

  it("user content never yields special ids, and decodes back to itself", () => {
    fc.assert(
      fc.property(anyText, fc.option(anyText, { nil: undefined }), (content, context) => {
        const ids = chat.encodeMessage({ role: "user", content, ...(context !== undefined ? { context } : {}) });
        expect(ids.slice(0, 4)).toEqual([START_HEADER_ID, 882, END_HEADER_ID, 271]);
        expect(ids.at(-1)).toBe(EOT_ID);
        const body = ids.slice(4, -1);
        expect(body.every((id) => id < 128000)).toBe(true);
        expect(tokenizer.decode(body)).toBe(wellFormed(context === undefined ? content : `${content}\n\n${context}`));
      }),
      { numRuns: 200 },
    );
  });

  it("random dialogs: the prompt splits back into the same roles and texts", () => {
    const message = fc.record({
      role: fc.constantFrom(...ROLES),
      content: fc.oneof(anyText, fc.array(anyText.map((text) => ({ type: "text" as const, text })), { maxLength: 3 })),
      stopReason: fc.constantFrom(...STOPS),
    });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 5 }), (messages) => {
        const ids = chat.encodeDialogPrompt(messages as Message[]);
        expect(ids[0]).toBe(128000);
        // Special ids appear only where the format puts them: bos, 2 per header, 1 terminator per message.
        expect(ids.filter((id) => id >= 128000).length).toBe(1 + 3 * messages.length + 2);
        const segments: number[][] = [];
        for (let i = 1; i < ids.length; i++) {
          if (ids[i] === START_HEADER_ID) segments.push([]);
          segments.at(-1)!.push(ids[i]);
        }
        expect(segments.length).toBe(messages.length + 1);
        expect(segments.at(-1)).toEqual(chat.encodeHeader("assistant"));
        messages.forEach((m, i) => {
          const seg = segments[i];
          const end = seg.indexOf(END_HEADER_ID);
          expect(tokenizer.decode(seg.slice(1, end))).toBe(m.role === "tool" ? "ipython" : m.role);
          expect(seg[end + 1]).toBe(271);
          const text = typeof m.content === "string" ? m.content : m.content.map((item) => item.text).join("");
          expect(tokenizer.decode(seg.slice(end + 2, -1))).toBe(wellFormed(text));
          expect(seg.at(-1)).toBe(m.role === "assistant" && m.stopReason === "end_of_message" ? EOM_ID : EOT_ID);
        });
      }),
      { numRuns: 150 },
    );
  });

  it("content list items are encoded one by one", () => {
    fc.assert(
      fc.property(fc.array(anyText, { minLength: 1, maxLength: 4 }), (texts) => {
        const ids = chat.encodeMessage({ role: "system", content: texts.map((text) => ({ type: "text", text })) });
        expect(ids.slice(4, -1)).toEqual(texts.flatMap((t) => tokenizer.encode(t, { bos: false, eos: false })));
      }),
      { numRuns: 100 },
    );
  });

  it("assistant tool calls in all three formats decode back to the same call", () => {
    fc.assert(
      fc.property(toolCall, fc.constantFrom<StopReason>("end_of_turn", "end_of_message"), ({ call, format: fmt }, stopReason) => {
        const ids = chat.encodeMessage({ role: "assistant", content: "", stopReason, toolCalls: [call] }, fmt);
        expect(ids[4] === PYTHON_TAG_ID).toBe(call.toolName === "code_interpreter");
        const decoded = chat.decodeAssistantMessage(ids.slice(4), "out_of_tokens");
        expect(decoded.stopReason).toBe(stopReason);
        expect(decoded.content).toBe("");
        expect(decoded.toolCalls.map((t) => [t.toolName, t.arguments])).toEqual([[call.toolName, call.arguments]]);
        expect(decoded.toolCalls[0].callId).not.toBe(call.callId);
      }),
      { numRuns: 300 },
    );
  });

  it("assistant text round-trips through encodeMessage -> decodeAssistantMessage, special spellings included", () => {
    // Text that is not a tool call: starts and ends with a letter, no braces/brackets/quotes/calls.
    const plain = fc
      .array(fc.oneof(fc.constantFrom(...SPECIAL_SPELLINGS.slice(1), "😀", "  "), fc.stringMatching(/^[a-zA-Z0-9 .,!?é\n-]{0,12}$/)), { maxLength: 6 })
      .map((parts) => `a${parts.join("")}z`)
      .filter((s) => !s.includes(".call("));
    fc.assert(
      fc.property(plain, fc.constantFrom(...STOPS), (text, stopReason) => {
        const ids = chat.encodeMessage({ role: "assistant", content: text, stopReason });
        const decoded = chat.decodeAssistantMessage(ids.slice(4), "out_of_tokens");
        expect(decoded).toEqual({
          role: "assistant",
          content: text,
          stopReason: stopReason === "end_of_message" ? "end_of_message" : "end_of_turn",
          toolCalls: [],
        });
      }),
      { numRuns: 200 },
    );
  });
});
