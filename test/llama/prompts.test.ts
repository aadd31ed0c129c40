// Llama 3.1 system and tool prompts against the reference: the pre-move llama-models
// tests/prompt_templates/test_system_prompts.py (llama-reference.md §6, with an injected date instead of
// datetime.now()) and the rendered examples of §3.1.

import { describe, expect, it } from "vitest";
import {
  builtinToolsPrompt,
  formatTodayDate,
  functionTagCustomToolsPrompt,
  jsonCustomToolsPrompt,
  llama31SystemMessages,
  pythonListCustomToolsPrompt,
  renderPlainJinja,
  systemDefaultPrompt,
  type ToolDefinition,
  toolResponseMessage,
  toolResponsePrompt,
} from "../../src/llama/prompts.js";
import { ChatFormatError } from "../../src/llama/tool-calls.js";

const TODAY = new Date(Date.UTC(2024, 8, 21)); // 21 September 2024, the date of the §3.1 examples

/** data_examples() of JsonCustomToolGenerator / FunctionTagCustomToolGenerator. */
const TRENDING_SONGS: ToolDefinition = {
  toolName: "trending_songs",
  description: "Returns the trending songs on a Music site",
  parameters: {
    n: { paramType: "int", description: "The number of songs to return", required: true },
    genre: { paramType: "str", description: "The genre of the songs to return", required: false },
  },
};

/** data_examples() of PythonListCustomToolGenerator. */
const GET_WEATHER: ToolDefinition = {
  toolName: "get_weather",
  description: "Get weather info for places",
  parameters: {
    city: { paramType: "string", description: "The name of the city to get the weather for", required: true },
    metric: {
      paramType: "string",
      description: "The metric for weather. Options are: celsius, fahrenheit",
      required: false,
      default: "celsius",
    },
  },
};

const JSON_TOOLS_EXPECTED = `Answer the user's question by making use of the following functions if needed.
If none of the function can be used, please say so.
Here is a list of functions in JSON format:
{
    "type": "function",
    "function": {
        "name": "trending_songs",
        "description": "Returns the trending songs on a Music site",
        "parameters": {
            "type": "object",
            "properties": [
                {
                    "n": {
                        "type": "object",
                        "description": "The number of songs to return"
                    }
                },
                {
                    "genre": {
                        "type": "object",
                        "description": "The genre of the songs to return"
                    }
                }
            ],
            "required": ["n"]
        }
    }
}

Return function calls in JSON format.`;

const FUNCTION_TAG_EXPECTED = `You have access to the following functions:

Use the function 'trending_songs' to 'Returns the trending songs on a Music site':
{"name": "trending_songs", "description": "Returns the trending songs on a Music site", "parameters": {"genre": {"description": "The genre of the songs to return", "param_type": "str", "required": false}, "n": {"description": "The number of songs to return", "param_type": "int", "required": true}}}

Think very carefully before calling functions.
If you choose to call a function ONLY reply in the following format with no prefix or suffix:

<function=example_function_name>{"example_name": "example_value"}</function>

Reminder:
- If looking for real time information use relevant functions before falling back to brave_search
- Function calls MUST follow the specified format, start with <function= and end with </function>
- Required parameters MUST be specified
- Only call one function at a time
- Put the entire function call reply on one line`;

const FUNCTION_DESCRIPTION = `If you decide to invoke any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]
You SHOULD NOT include any other text in the response.

Here is a list of functions in JSON format that you can invoke.

[
    {
        "name": "get_weather",
        "description": "Get weather info for places",
        "parameters": {
            "type": "dict",
            "required": ["city"],
            "properties": {
                "city": {
                    "type": "string",
                    "description": "The name of the city to get the weather for"
                },
                "metric": {
                    "type": "string",
                    "description": "The metric for weather. Options are: celsius, fahrenheit",
                    "default": "celsius"
                }
            }
        }
    }
]`;

describe("test_system_prompts.py (pre-move llama-models)", () => {
  it("test_system_default (injected date, %d %B %Y)", () => {
    expect(systemDefaultPrompt(TODAY)).toBe("Cutting Knowledge Date: December 2023\nToday Date: 21 September 2024");
    expect(formatTodayDate(new Date(Date.UTC(2025, 0, 5)))).toBe("05 January 2025"); // zero-padded day, full month
  });

  it("test_system_builtin_only", () => {
    expect(builtinToolsPrompt(["code_interpreter", "brave_search", "wolfram_alpha"])).toBe("Environment: ipython\nTools: brave_search, wolfram_alpha");
  });

  it("test_system_custom_only (json)", () => {
    expect(jsonCustomToolsPrompt([TRENDING_SONGS])).toBe(JSON_TOOLS_EXPECTED);
  });

  it("test_system_custom_function_tag (tojson sorts keys)", () => {
    expect(functionTagCustomToolsPrompt([TRENDING_SONGS])).toBe(FUNCTION_TAG_EXPECTED);
  });

  it("test_llama_3_2_system_zero_shot (python_list)", () => {
    expect(pythonListCustomToolsPrompt([GET_WEATHER])).toBe(
      "You are an expert in composing functions. You are given a question and a set of possible functions.\n" +
        "Based on the question, you will need to make one or more function/tool calls to achieve the purpose.\n" +
        "If none of the function can be used, point it out. If the given question lacks the parameters required by the function,\n" +
        "also point it out. You should only return the function call in tools call sections.\n\n" +
        FUNCTION_DESCRIPTION,
    );
  });

  it("test_llama_3_2_provided_system_prompt (the prompt is a template; one trailing newline dropped)", () => {
    expect(pythonListCustomToolsPrompt([GET_WEATHER], "\nOverriding message.\n\n{{ function_description }}\n")).toBe(
      "\nOverriding message.\n\n" + FUNCTION_DESCRIPTION,
    );
  });
});

describe("LLama31Interface.system_messages (§3.1 examples)", () => {
  const INSTRUCTION = "You are a helpful assistant.";

  it("default", () => {
    expect(llama31SystemMessages({ instruction: INSTRUCTION, today: TODAY })).toEqual([
      { role: "system", content: "Cutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\nYou are a helpful assistant.\n" },
    ]);
  });

  it("builtin tools", () => {
    expect(llama31SystemMessages({ builtinTools: ["brave_search", "wolfram_alpha"], instruction: INSTRUCTION, today: TODAY })).toEqual([
      {
        role: "system",
        content:
          "Environment: ipython\nTools: brave_search, wolfram_alpha\nCutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\nYou are a helpful assistant.\n",
      },
    ]);
  });

  it("code interpreter only, no instruction: a blank line after Environment", () => {
    expect(llama31SystemMessages({ builtinTools: ["code_interpreter"], today: TODAY })[0].content).toBe(
      "Environment: ipython\n\nCutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n",
    );
  });

  it("custom tools add a user message in the chosen format; python_list is refused like the reference", () => {
    const json = llama31SystemMessages({ customTools: [TRENDING_SONGS], instruction: INSTRUCTION, today: TODAY });
    expect(json).toEqual([
      {
        role: "system",
        content: "Environment: ipython\n\nCutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\nYou are a helpful assistant.\n",
      },
      { role: "user", content: JSON_TOOLS_EXPECTED },
    ]);
    const tag = llama31SystemMessages({ customTools: [TRENDING_SONGS], toolPromptFormat: "function_tag", today: TODAY });
    expect(tag[1]).toEqual({ role: "user", content: FUNCTION_TAG_EXPECTED });
    let error: unknown;
    try {
      llama31SystemMessages({ customTools: [TRENDING_SONGS], toolPromptFormat: "python_list" });
    } catch (e) {
      error = e;
    }
    expect((error as ChatFormatError).kind).toBe("ValueError");
  });
});

describe("ToolResponseGenerator (§3.1)", () => {
  it("completed/failed with [stdout]/[stderr] only when non-empty", () => {
    expect(toolResponsePrompt({ status: "success", stdout: '{"results":["something something"]}' })).toBe(
      'completed\n[stdout]{"results":["something something"]}[/stdout]',
    );
    expect(toolResponsePrompt({ status: "failure", stderr: "boom" })).toBe("failed\n[stderr]boom[/stderr]");
    expect(toolResponsePrompt({ status: "success", stdout: "", stderr: "e" })).toBe("completed\n[stderr]e[/stderr]");
    expect(toolResponseMessage({ status: "success", stdout: "42" })).toEqual({ role: "tool", content: "completed\n[stdout]42[/stdout]" });
    expect(() => toolResponsePrompt({ status: "ok" as never })).toThrow(ChatFormatError);
  });
});

describe("jinja-rendered details", () => {
  // Expected values checked by rendering the pre-move reference templates with jinja2 3.1.6.
  it("None descriptions render as None; tojson HTML-escapes and escapes non-ASCII", () => {
    const tool: ToolDefinition = { toolName: "f", parameters: { "a<b": { paramType: "str", description: null, required: true } } };
    const json = jsonCustomToolsPrompt([tool]);
    expect(json).toContain('"description": "None"');
    expect(json).toContain('"required": ["a\\u003cb"]');
    const tag = functionTagCustomToolsPrompt([{ ...tool, description: "it's é" }]);
    expect(tag).toContain("Use the function 'f' to 'it's é':");
    expect(tag).toContain('"parameters": {"a\\u003cb": {"description": null, "param_type": "str", "required": true}}');
  });

  it("python_list: default shown only when truthy, with Python str()", () => {
    const tool = (value: unknown): ToolDefinition => ({ toolName: "f", description: "d", parameters: { p: { paramType: "int", default: value } } });
    expect(pythonListCustomToolsPrompt([tool(0)], "{{ function_description }}")).not.toContain('"default"');
    expect(pythonListCustomToolsPrompt([tool(true)], "{{ function_description }}")).toContain('"default": "True"');
    expect(pythonListCustomToolsPrompt([tool(["a", 1])], "{{ function_description }}")).toContain(`"default": "['a', 1]"`);
  });

  it("no tools: empty lists keep the templates' whitespace", () => {
    expect(jsonCustomToolsPrompt([])).toBe(
      "Answer the user's question by making use of the following functions if needed.\nIf none of the function can be used, please say so.\nHere is a list of functions in JSON format:\n\nReturn function calls in JSON format.",
    );
    expect(pythonListCustomToolsPrompt([], "{{ function_description }}").endsWith("invoke.\n\n[\n    \n]")).toBe(true);
    expect(builtinToolsPrompt([])).toBe("");
  });

  it("renderPlainJinja: jinja2 defaults (no block trimming, one trailing newline dropped)", () => {
    expect(renderPlainJinja("{% if x %}\n  a\n{% endif %}\n\n", { x: true })).toBe("\n  a\n\n");
    expect(renderPlainJinja("{{ v | tojson }}", { v: { b: "<'>", a: 1 } })).toBe('{"a": 1, "b": "\\u003c\\u0027\\u003e"}');
  });
});
