// Boundary validation of untrusted messages: accepted shapes, and errors that name the field.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MessageValidationError,
  parseMessage,
  parseMessages,
  parseToolCall,
  parseToolDefinitions,
  parseToolPromptFormat,
} from "../../src/llama/messages.js";

function issuesOf(f: () => unknown): readonly string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof MessageValidationError) return e.issues;
    throw e;
  }
  throw new Error("expected a MessageValidationError");
}

const VALID = [
  { role: "system", content: "s" },
  { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "<|eot_id|>" }], context: "ctx" },
  {
    role: "assistant",
    content: "",
    stopReason: "end_of_message",
    toolCalls: [{ callId: "1", toolName: "get_weather", arguments: { city: "Zürich", n: 1.5, ok: true, x: null, l: [1, "a"], d: { k: "v" } } }],
  },
  { role: "tool", content: "completed" },
];

describe("parseMessages", () => {
  it("accepts the chat-format message shapes and returns them unchanged", () => {
    expect(parseMessages(VALID)).toEqual(VALID);
    expect(parseMessage({ role: "assistant", content: "x", toolCalls: [{ callId: "c", toolName: "f", arguments: '{"a": 1}' }] })).toBeTruthy();
  });

  it("names the field path of the problem", () => {
    expect(issuesOf(() => parseMessages([VALID[0], VALID[0], { role: "user", content: [{ type: "text", text: 5 }] }]))).toEqual([
      "messages[2].content[0].text: expected string",
    ]);
    expect(issuesOf(() => parseMessages([{ role: "bot", content: "a" }]))).toEqual([
      'messages[0].role: expected "system" | "user" | "assistant" | "tool"',
    ]);
    expect(issuesOf(() => parseMessages([{ role: "user", content: 5 }]))).toEqual(["messages[0].content: expected string | array"]);
    expect(issuesOf(() => parseMessages([{ role: "user" }]))).toEqual(["messages[0].content: expected string | array"]);
    expect(issuesOf(() => parseMessages("hi"))).toEqual(["messages: expected array"]);
    expect(issuesOf(() => parseMessages([{ role: "assistant", content: "", tool_calls: [] }]))).toEqual(['messages[0]: unknown key "tool_calls"']);
    expect(issuesOf(() => parseMessages([{ role: "assistant", content: "", stopReason: "done" }]))).toEqual([
      'messages[0].stopReason: expected "end_of_turn" | "end_of_message" | "out_of_tokens"',
    ]);
  });

  it("refuses tool-call arguments nested deeper than the reference's RecursiveType", () => {
    const call = (args: unknown) => [{ role: "assistant", content: "", toolCalls: [{ callId: "1", toolName: "f", arguments: args }] }];
    expect(issuesOf(() => parseMessages(call({ a: { b: { c: 1 } } })))).toEqual([
      "messages[0].toolCalls[0].arguments.a.b: expected string | number | boolean | null",
    ]);
    expect(issuesOf(() => parseMessages(call({ a: [{ b: 1 }] })))).toEqual([
      "messages[0].toolCalls[0].arguments.a[0]: expected string | number | boolean | null",
    ]);
    expect(issuesOf(() => parseMessages(call(5)))).toEqual(["messages[0].toolCalls[0].arguments: expected string | record"]);
    expect(issuesOf(() => parseMessages([{ role: "assistant", content: "", toolCalls: [{ callId: "1", toolName: "", arguments: {} }] }]))).toEqual([
      "messages[0].toolCalls[0].toolName: must not be empty",
    ]);
  });

  it("other parsers name their root", () => {
    expect(issuesOf(() => parseToolCall({ callId: 1, toolName: "f", arguments: {} }))).toEqual(["toolCall.callId: expected string"]);
    expect(issuesOf(() => parseToolPromptFormat("xml"))).toEqual(['toolPromptFormat: expected "json" | "function_tag" | "python_list"']);
    expect(issuesOf(() => parseToolDefinitions([{ toolName: "f", parameters: { n: { paramType: 1 } } }]))).toEqual(["tools[0].parameters.n.paramType: expected string"]);
  });

  it("property: corrupting any one field of a valid dialog is reported at exactly that path", () => {
    // Each corruption: a path into VALID and a wrong value for it.
    const targets: Array<[Array<string | number>, string]> = [
      [[0, "role"], "messages[0].role"],
      [[1, "content", 1, "text"], "messages[1].content[1].text"],
      [[1, "context"], "messages[1].context"],
      [[2, "stopReason"], "messages[2].stopReason"],
      [[2, "toolCalls", 0, "callId"], "messages[2].toolCalls[0].callId"],
      [[2, "toolCalls", 0, "toolName"], "messages[2].toolCalls[0].toolName"],
      [[3, "content"], "messages[3].content"],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...targets), fc.constantFrom<unknown>(42, true, { x: 1 }, [[1]], -1.5), ([path, expected], wrong) => {
        const dialog = structuredClone(VALID) as any[];
        let node: any = dialog;
        for (const key of path.slice(0, -1)) node = node[key];
        node[path.at(-1)!] = wrong;
        const issues = issuesOf(() => parseMessages(dialog));
        expect(issues.length).toBeGreaterThan(0);
        for (const issue of issues) expect(issue.startsWith(`${expected}:`) || issue.startsWith(`${expected}[`) || issue.startsWith(`${expected}.`), issue).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});
