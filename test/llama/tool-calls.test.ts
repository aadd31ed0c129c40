// Tool-call parsing and serialisation against the reference.
// - "test_tool_utils.py": the cases of llama-models HEAD models/llama3/tests/api/test_tool_utils.py
//   (llama-reference.md §6).
// - "reference edge cases": expected values computed by running llama-models HEAD
//   ChatFormat.decode_assistant_message_from_content (tool_utils.py + datatypes.py) under CPython 3.11.7
//   and pydantic 2.13.4, the versions of the golden vectors. No tokenizer is needed for these.
// - "Python json": expected values printed by CPython 3.11.7's json module.

import { describe, expect, it } from "vitest";
import { ChatFormat } from "../../src/llama/chat-format.js";
import { dumps, JSONDecodeError, loads, PythonFloat, pythonFloatRepr } from "../../src/llama/python-json.js";
import {
  ChatFormatError,
  encodeToolCall,
  isValidPythonList,
  maybeExtractBuiltinToolCall,
  maybeExtractCustomToolCall,
  parsePythonListForFunctionCalls,
} from "../../src/llama/tool-calls.js";

/** The content rules need no tokenizer; a stub that would fail loudly if one were used. */
const chat = new ChatFormat({
  encode: () => {
    throw new Error("unused");
  },
  decode: () => {
    throw new Error("unused");
  },
});

function kindOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof ChatFormatError ? e.kind : `not a ChatFormatError: ${String(e)}`;
  }
  return undefined;
}

describe("test_tool_utils.py (llama-models HEAD)", () => {
  it("maybe_extract_custom_tool_call: function tag without closing tag", () => {
    expect(maybeExtractCustomToolCall('<function=getWeather>{"location":"New York","date":"2023-08-05"}')).toEqual([
      "getWeather",
      { location: "New York", date: "2023-08-05" },
    ]);
  });

  it("is_valid_python_list: True cases", () => {
    for (const s of [
      '[get_boiling_point(liquid_name="water", celcius=True)]',
      '[get_boiling_point(liquid_name="water", celcius=True), get_melting_point(substance="ice", kelvin=False)]',
      '[get_boiling_point(liquid_name="water", celcius=True, precise=False)]',
      "[calculate_volume(radius=5.2, height=10)]",
    ]) {
      expect(isValidPythonList(s), s).toBe(true);
    }
  });

  it("is_valid_python_list: False cases", () => {
    for (const s of [
      "[]",
      '[get_boiling_point(liquid_name="water"), 42]',
      '[get_boiling_point("water", True)]',
      '[[get_boiling_point(liquid_name="water")]]',
      '{"func": get_boiling_point(liquid_name="water")}',
      '[get_boiling_point(liquid_name="water", celcius=True',
      'get_boiling_point(liquid_name="water")',
      '[(get_boiling_point(liquid_name="water"),)]',
    ]) {
      expect(isValidPythonList(s), s).toBe(false);
    }
  });

  it("parse_python_list_for_function_calls", () => {
    expect(parsePythonListForFunctionCalls('[get_boiling_point(liquid_name="water", celcius=True)]')).toEqual([
      ["get_boiling_point", { liquid_name: "water", celcius: true }],
    ]);
    expect(
      parsePythonListForFunctionCalls('[get_boiling_point(liquid_name="water", celcius=True), get_melting_point(substance="ice", kelvin=False)]'),
    ).toEqual([
      ["get_boiling_point", { liquid_name: "water", celcius: true }],
      ["get_melting_point", { substance: "ice", kelvin: false }],
    ]);
    expect(parsePythonListForFunctionCalls("[calculate_volume(radius=5.2, height=10)]")).toEqual([["calculate_volume", { radius: 5.2, height: 10 }]]);
    expect(parsePythonListForFunctionCalls('[process_data(name="sample", value=42, active=True, ratio=3.14)]')).toEqual([
      ["process_data", { name: "sample", value: 42, active: true, ratio: 3.14 }],
    ]);
    expect(parsePythonListForFunctionCalls("[initialize()]")).toEqual([["initialize", {}]]);
    expect(parsePythonListForFunctionCalls('[analyze_text(content="Hello, world!", language="en")]')).toEqual([
      ["analyze_text", { content: "Hello, world!", language: "en" }],
    ]);
    expect(
      parsePythonListForFunctionCalls(
        '[get_boiling_point(liquid={"name":"water", "color":"translucent"}), convert_temperature(value=[100, 101], from_unit="C", to_unit="F")]',
      ),
    ).toEqual([
      ["get_boiling_point", { liquid: { name: "water", color: "translucent" } }],
      ["convert_temperature", { value: [100, 101], from_unit: "C", to_unit: "F" }],
    ]);
  });

  it("parse_python_list_for_function_calls raises like the reference", () => {
    expect(kindOf(() => parsePythonListForFunctionCalls("[f(a=b)]"))).toBe("ValueError");
    expect(kindOf(() => parsePythonListForFunctionCalls("f(a=1)"))).toBe("ValueError");
    expect(kindOf(() => parsePythonListForFunctionCalls("[f(a=1"))).toBe("SyntaxError");
    expect(kindOf(() => parsePythonListForFunctionCalls("# nothing"))).toBe("IndexError");
  });
});

describe("reference edge cases of decode_assistant_message_from_content", () => {
  // [content, expected content, expected calls] or [content, exception name]
  const RESULTS: Array<[string, string, Array<[string, unknown]>]> = [
    ['{"name": null, "parameters": {}}', '{"name": null, "parameters": {}}', []],
    ['{"name": "f", "parameters": null}', '{"name": "f", "parameters": null}', []],
    ["[f(a=1, a=2)]", "", [["f", { a: 2 }]]],
    ["[f(a=(1, 2), b={3})]", "", [["f", { a: [1, 2], b: [3] }]]],
    ['[f(a=b"x")]', "", [["f", { a: "x" }]]],
    ["[f(a=1)]\n[g(b=2)]", "[f(a=1)]\n[g(b=2)]", []],
    ["[f(a=1)]; x = 1", "[f(a=1)]; x = 1", []],
    ["hello\x00", "hello\x00", []],
    ['<function=f>{"x": 1e400}</function>', "", [["f", { x: Infinity }]]],
    ['{"type": "function", "name": "f", "parameters": {"a": NaN}}', "", [["f", { a: NaN }]]],
    ['  {"name": "f", "parameters": {}}\n\n', "", [["f", {}]]],
    ['{"name": "f", "parameters": {}}\f', '{"name": "f", "parameters": {}}\f', []],
    ['[brave_search(query="x", n=2)]', "", [["brave_search", { query: "x" }]]],
    ['[code_interpreter(code="print(1)")]', "", [["code_interpreter", { query: "print(1)" }]]],
    ['<function=wolfram_alpha>{"q": "2+2", "x": 1}', "", [["wolfram_alpha", { query: "2+2" }]]],
    ['ｆｏｏ.call(query="x")', "", [["ｆｏｏ", { query: "x" }]]],
    ['x_é1.call(query="a")', "", [["x_é1", { query: "a" }]]],
    ['a.b.call(query="q")', "", [["b", { query: "q" }]]],
    ["[f(a=1)] # done", "", [["f", { a: 1 }]]],
    [" [f(a=1)]", "", [["f", { a: 1 }]]],
    ["[f(a=\"it's\")]", "", [["f", { a: "it's" }]]],
    ["[f(a='\\u00e9\\n')]", "", [["f", { a: "é\n" }]]],
    ["[f(a=1_000, b=0x10, c=1e3)]", "", [["f", { a: 1000, b: 16, c: 1000 }]]],
    ['{"name": "f", "parameters": {"a": 1, "a": 2}}', "", [["f", { a: 2 }]]],
    ["[f()]", "", [["f", {}]]],
    ["[]", "[]", []],
    ["[f]", "[f]", []],
  ];
  const RAISES: Array<[string, string]> = [
    ['{"name": [1], "parameters": {}}', "TypeError"],
    ['{"name": 5, "parameters": {}}', "ValidationError"],
    ['{"name": "brave_search", "parameters": "x"}', "AttributeError"],
    ['{"name": "brave_search", "parameters": null}', "AttributeError"],
    ["[f(a={1: 2})]", "ValidationError"],
    ["[f(a=[[1]])]", "ValidationError"],
    ['[f(a=f"x")]', "ValueError"],
    ['[f(**{"a": 1})]', "ValidationError"],
    ["hello \ud800", "ValueError"], // UnicodeEncodeError, a ValueError, escapes is_valid_python_list
    ["[f(x=-1, y=+2.5, z=1+2j)]", "ValidationError"],
    ["[f(a=None, b=True, c=...)]", "ValidationError"],
    ["[f(a=lambda: 1)]", "ValueError"],
    ["[f(a=x)]", "ValueError"],
    ['{"name": "f", "parameters": {"a": [{"b": 1}]}}', "ValidationError"],
    ['{"name": "f", "parameters": {"a": {"b": [1]}}}', "ValidationError"],
  ];

  it("results", () => {
    for (const [content, expectedContent, calls] of RESULTS) {
      const m = chat.decodeAssistantMessageFromContent(content, "out_of_tokens");
      expect(
        { content: m.content, calls: m.toolCalls.map((t) => [t.toolName, t.arguments]) },
        JSON.stringify(content),
      ).toEqual({ content: expectedContent, calls });
    }
  });

  it("exceptions", () => {
    for (const [content, kind] of RAISES) {
      expect(kindOf(() => chat.decodeAssistantMessageFromContent(content, "out_of_tokens")), JSON.stringify(content)).toBe(kind);
    }
  });

  it("pathological nesting raises like the reference instead of overflowing the stack", () => {
    // Reference: json.loads hits RecursionError (uncaught by is_json); ast.parse refuses more than 200
    // nested brackets with a SyntaxError (so the text stays content); a 100000-term sum exceeds the
    // AST construction depth (RecursionError).
    expect(kindOf(() => chat.decodeAssistantMessageFromContent("[".repeat(100_000) + "]".repeat(100_000), "out_of_tokens"))).toBe("RecursionError");
    expect(kindOf(() => chat.decodeAssistantMessageFromContent('{"a":'.repeat(100_000) + "1" + "}".repeat(100_000), "out_of_tokens"))).toBe("RecursionError");
    const brackets = "[f(a=" + "[".repeat(100_000) + "]".repeat(100_000) + ")]";
    expect(chat.decodeAssistantMessageFromContent(brackets, "out_of_tokens").content).toBe(brackets);
    expect(kindOf(() => chat.decodeAssistantMessageFromContent("[f(a=1" + "+1".repeat(100_000) + ")]", "out_of_tokens"))).toBe("RecursionError");
    expect(kindOf(() => chat.decodeAssistantMessageFromContent("[f(a=" + "-".repeat(100_000) + "1)]", "out_of_tokens"))).toMatch(/Error$/);
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(kindOf(() => encodeToolCall({ toolName: "f", arguments: { a: deep } }, "json"))).toBe("RecursionError");
    expect(kindOf(() => encodeToolCall({ toolName: "f", arguments: { a: deep } }, "python_list"))).toBe("RecursionError");
  });

  it("builtin regex: Python \\w and \\b are Unicode-aware; first match wins", () => {
    expect(maybeExtractBuiltinToolCall('é brave_search.call(query="a") wolfram_alpha.call(query="b")')).toEqual(["brave_search", "a"]);
    expect(maybeExtractBuiltinToolCall('ébrave_search.call(query="a")')).toEqual(["ébrave_search", "a"]);
    expect(maybeExtractBuiltinToolCall('brave_search.call(query="a"')).toBeNull();
  });
});

describe("encode_tool_call details", () => {
  it("builtin queries go in raw and through Python str(); missing keys raise KeyError", () => {
    expect(encodeToolCall({ toolName: "photogen", arguments: { query: 5 } }, "json")).toBe('photogen.call(query="5")');
    expect(encodeToolCall({ toolName: "brave_search", arguments: { query: [true, "a"] } }, "json")).toBe(`brave_search.call(query="[True, 'a']")`);
    expect(kindOf(() => encodeToolCall({ toolName: "brave_search", arguments: {} }, "json"))).toBe("KeyError");
    expect(kindOf(() => encodeToolCall({ toolName: "f", arguments: "s" }, "python_list"))).toBe("AttributeError");
    expect(kindOf(() => encodeToolCall({ toolName: "f", arguments: {} }, "xml" as never))).toBe("ValueError");
    expect(kindOf(() => encodeToolCall({ toolName: "f", arguments: { a: undefined } }, "python_list"))).toBe("ValueError");
  });

  it("string arguments are JSON strings in json/function_tag", () => {
    expect(encodeToolCall({ toolName: "f", arguments: '{"a": 1}' }, "function_tag")).toBe('<function=f>"{\\"a\\": 1}"</function>');
    expect(encodeToolCall({ toolName: "f", arguments: "x" }, "json")).toBe('{"type": "function", "name": "f", "parameters": "x"}');
  });
});

describe("Python json (CPython 3.11.7)", () => {
  it("float repr", () => {
    const cases: Array<[number, string]> = [
      [1e16, "1e+16"],
      [1e15, "1000000000000000.0"],
      [0.0001, "0.0001"],
      [0.00001, "1e-05"],
      [1.5e-7, "1.5e-07"],
      [1e100, "1e+100"],
      [-0, "-0.0"],
      [123456789.123, "123456789.123"],
      [5e-324, "5e-324"],
      [1.7976931348623157e308, "1.7976931348623157e+308"],
      [0.1 + 0.2, "0.30000000000000004"],
      [2 ** 53, "9007199254740992.0"],
    ];
    for (const [x, repr] of cases) expect(pythonFloatRepr(x)).toBe(repr);
  });

  it("dumps: ensure_ascii, NaN/Infinity, indent=0, sort_keys by code point", () => {
    const nonFinite = [NaN, Infinity, -Infinity];
    expect(dumps({ s: "é😀\x7f\x00\u2028", q: 'a"\\b\n', n: nonFinite })).toBe(
      '{"s": "\\u00e9\\ud83d\\ude00\\u007f\\u0000\\u2028", "q": "a\\"\\\\b\\n", "n": [NaN, Infinity, -Infinity]}',
    );
    expect(dumps({ s: "é😀\x7f\x00\u2028" }, { ensureAscii: false })).toBe('{"s": "é😀\x7f\\u0000\u2028"}');
    expect(dumps([1, { a: [], b: {} }], { indent: 0 })).toBe('[\n1,\n{\n"a": [],\n"b": {}\n}\n]');
    expect(dumps({ b: 1, a: { d: 2, c: 3 }, "😀": 0, "\uffff": 1 }, { sortKeys: true })).toBe(
      '{"a": {"c": 3, "d": 2}, "b": 1, "\\uffff": 1, "\\ud83d\\ude00": 0}',
    );
    expect(dumps({ f: new PythonFloat(1), i: 1, big: 10n ** 20n })).toBe('{"f": 1.0, "i": 1, "big": 100000000000000000000}');
  });

  it("loads: whitespace, errors, surrogates, duplicates, __proto__", () => {
    expect(loads(' {"a": 1.0} \n')).toEqual({ a: 1 });
    expect((loads(' {"a": 1.0} \n', { floats: "PythonFloat" }) as any).a).toEqual(new PythonFloat(1));
    expect(loads('"\\ud83d\\ude00\\ud800x"')).toBe("😀\ud800x");
    expect(loads('{"a": 1, "a": 2}')).toEqual({ a: 2 });
    expect(Object.is(loads("-0"), 0)).toBe(true);
    expect(loads("NaN")).toBeNaN();
    expect(loads("-Infinity")).toBe(-Infinity);
    const proto = loads('{"__proto__": 1}') as Record<string, unknown>;
    expect(Object.keys(proto)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    for (const bad of ["\f1", "[1,]", "01", "1.", '"a\tb"', "\ufeff1", ""]) {
      expect(() => loads(bad), JSON.stringify(bad)).toThrow(JSONDecodeError);
    }
  });
});
