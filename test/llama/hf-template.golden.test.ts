// The Hugging Face Llama 3.1 chat_template.jinja rendered like transformers (llama-reference.md §3.3),
// against the golden renders (jinja2 3.1.6 with transformers' settings) and the behaviours §3.3 lists.

import { beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate, ChatTemplateError, renderChatTemplate, strftime } from "../../src/llama/hf-template.js";
import { PythonFloat } from "../../src/llama/python-json.js";
import type { Tokenizer } from "../../src/llama/tokenizer.js";
import { chatTemplate, golden, hasShared, sharedTokenizer } from "./chat-format-fixtures.js";

describe.skipIf(!hasShared)("golden vectors: hf_chat_template", () => {
  let tokenizer: Tokenizer;
  let template: ChatTemplate;
  beforeAll(async () => {
    tokenizer = await sharedTokenizer();
    template = new ChatTemplate(chatTemplate());
  });

  it("renders all 6 cases byte for byte, and their tiktoken ids (allowed_special='all')", () => {
    const cases = golden("PythonFloat").hf_chat_template as any[];
    expect(cases.length).toBe(6);
    for (const c of cases) {
      const { messages, tools, add_generation_prompt, ...variables } = c.kwargs;
      const text = template.render({ messages, tools, addGenerationPrompt: add_generation_prompt, variables });
      expect(text, c.name).toBe(c.rendered);
      expect(tokenizer.encode(text, { bos: false, eos: false, allowedSpecial: "all" }), c.name).toEqual(c.ids_tiktoken_allowed_special_all);
    }
  });
});

describe.skipIf(!hasShared)("Llama 3.1 template behaviours (§3.3)", () => {
  let template: ChatTemplate;
  beforeAll(() => {
    template = new ChatTemplate(chatTemplate());
  });
  const SYSTEM = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";

  it("None content renders as the text None (jinja2 str(None)), trimmed content otherwise", () => {
    expect(template.render({ messages: [{ role: "user", content: null }] })).toBe(
      `${SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nNone<|eot_id|>`,
    );
  });

  it("trim is Python str.strip: U+001C..U+001F and U+0085 are whitespace, U+FEFF is not", () => {
    const out = template.render({ messages: [{ role: "user", content: "\x1c\x85 hi \u2028\ufeff" }] });
    expect(out).toBe(`${SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi \u2028\ufeff<|eot_id|>`);
  });

  it("tool results: strings are JSON-quoted, mappings JSON, numbers printed with str()", () => {
    const render = (content: unknown) =>
      template
        .render({ messages: [{ role: "user", content: "q" }, { role: "tool", content }] })
        .split("<|start_header_id|>ipython<|end_header_id|>\n\n")[1];
    expect(render("7")).toBe('"7"<|eot_id|>');
    expect(render({ b: 1, a: "é" })).toBe('{"b": 1, "a": "é"}<|eot_id|>'); // key order kept, ensure_ascii=False
    expect(render(7)).toBe("7<|eot_id|>");
    expect(render(new PythonFloat(2))).toBe("2.0<|eot_id|>");
    expect(render(true)).toBe("True<|eot_id|>");
  });

  it("custom tool call arguments keep Python float spelling and key order", () => {
    const out = template.render({
      messages: [
        { role: "user", content: "w" },
        { role: "assistant", tool_calls: [{ type: "function", function: { name: "f", arguments: { z: new PythonFloat(1), a: 1e20 } } }] },
      ],
    });
    expect(out.endsWith('{"name": "f", "parameters": {"z": 1.0, "a": 1e+20}}<|eot_id|>')).toBe(true);
  });

  it("raises like the template: empty or null tool_calls, tools without a user message, non-string builtin arguments", () => {
    const call = (tool_calls: unknown) => template.render({ messages: [{ role: "assistant", tool_calls }] });
    expect(() => call([])).toThrow(ChatTemplateError);
    expect(() => call([])).toThrow("This model only supports single tool-calls at once!");
    expect(() => call(null)).toThrow(ChatTemplateError);
    expect(() => template.render({ messages: [{ role: "system", content: "s" }], tools: [{ type: "function" }] })).toThrow(
      "Cannot put tools in the first user message when there's no first user message!",
    );
    expect(() =>
      template.render({
        messages: [{ role: "assistant", tool_calls: [{ function: { name: "brave_search", arguments: { query: 5 } } }] }],
        variables: { builtin_tools: ["brave_search"] },
      }),
    ).toThrow(ChatTemplateError);
  });

  it("builtin call with several arguments: python_tag, NAME.call(k=\"v\", …), eom", () => {
    const out = template.render({
      messages: [{ role: "assistant", tool_calls: [{ function: { name: "brave_search", arguments: { query: "q", n: "2" } } }] }],
      variables: { builtin_tools: ["brave_search"] },
    });
    expect(out.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>brave_search.call(query="q", n="2")<|eom_id|>')).toBe(true);
  });
});

describe("transformers-style jinja environment", () => {
  const render = (source: string, variables: Record<string, unknown> = {}) => renderChatTemplate(source, { messages: [], variables });

  it("tojson is Python json.dumps(ensure_ascii=False) with indent, separators and sort_keys", () => {
    const x = { b: 1, a: [new PythonFloat(1.5), "é", null, true] };
    // Python: json.dumps(x, ensure_ascii=False) / indent=2 / separators=(",", ":") / sort_keys=True
    expect(render("{{ x | tojson }}", { x })).toBe('{"b": 1, "a": [1.5, "é", null, true]}');
    expect(render("{{ x | tojson(indent=2) }}", { x })).toBe('{\n  "b": 1,\n  "a": [\n    1.5,\n    "é",\n    null,\n    true\n  ]\n}');
    expect(render('{{ x | tojson(separators=(",", ":")) }}', { x })).toBe('{"b":1,"a":[1.5,"é",null,true]}');
    expect(render("{{ x | tojson(sort_keys=true) }}", { x })).toBe('{"a": [1.5, "é", null, true], "b": 1}');
    expect(render("{{ x | tojson(ensure_ascii=true) }}", { x: "é<" })).toBe('"\\u00e9<"');
  });

  it("output and ~ use Python str(); + refuses str + int like Python", () => {
    expect(render("{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}", { a: true, b: null, c: new PythonFloat(3), d: ["x", 1], e: { k: false } })).toBe(
      "True|None|3.0|['x', 1]|{'k': False}",
    );
    expect(render("{{ 'n=' ~ n }}", { n: false })).toBe("n=False");
    expect(() => render("{{ 'n=' + n }}", { n: 1 })).toThrow(ChatTemplateError);
    expect(render("{{ 1 + 2.5 }} {{ [1] + [2] }}")).toBe("3.5 [1, 2]");
  });

  it("select/reject with tests, join with str(), raise_exception, trim_blocks/lstrip_blocks", () => {
    expect(render("{{ xs | reject('equalto', 'b') | join(', ') }}", { xs: ["a", "b", "c"] })).toBe("a, c");
    expect(render("{{ xs | select('equalto', 1) | list | length }}", { xs: [1, 2, 1] })).toBe("2");
    expect(render("{{ xs | join('-') }}", { xs: [true, 1] })).toBe("True-1");
    expect(() => render("{{ raise_exception('boom') }}")).toThrow("boom");
    expect(render("{% if true %}\n  x\n{% endif %}\n")).toBe("  x\n");
  });

  it("strftime_now uses the injected clock; strftime follows Python's directives", () => {
    const date = new Date(Date.UTC(2024, 8, 1, 15, 4, 5));
    expect(renderChatTemplate('{{ strftime_now("%d %b %Y") }}', { messages: [], now: () => date })).toBe("01 Sep 2024");
    expect(strftime(date, "%A %a %B %m %y %H:%M:%S %I%p %j %%")).toBe("Sunday Sun September 09 24 15:04:05 03PM 245 %");
  });
});
