/**
 * Llama 3.1 system and tool prompts as llama-models generates them (pre-move
 * `models/llama3/prompt_templates/*.py` and `api/interface.py`, llama-reference.md §3.1).
 *
 * The reference renders small jinja2 templates with default settings (the single trailing newline
 * dropped, `tojson` sorting keys and HTML-escaping). The outputs are plain text with a fixed shape, so
 * they are built directly here; what jinja contributes is reproduced explicitly: `{{ x }}` is Python
 * `str(x)` (None renders as `None`), `tojson` is {@link jinja2ToJson}, and a custom python_list system
 * prompt is itself a template (rendered by `jinja-env.ts` configured like plain jinja2).
 */

import type { Message } from "./chat-format.js";
import { jinja2ToJson, JinjaTemplate } from "./jinja-env.js";
import { pythonStr } from "./python-literal.js";
import { type BuiltinTool, ChatFormatError, isBuiltinTool, type ToolPromptFormat } from "./tool-calls.js";

/** `ToolParamDefinition` (models/datatypes.py). */
export interface ToolParamDefinition {
  paramType: string;
  description?: string | null;
  /** Defaults to true, as in the reference. */
  required?: boolean | null;
  default?: unknown;
}

/** `ToolDefinition` of a custom tool. */
export interface ToolDefinition {
  toolName: string;
  description?: string | null;
  parameters?: Record<string, ToolParamDefinition> | null;
}

const MONTHS = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];

/** Python `strftime("%d %B %Y")` of a date (UTC calendar day): `21 September 2024`. */
export function formatTodayDate(date: Date): string {
  return `${String(date.getUTCDate()).padStart(2, "0")} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}`;
}

/** jinja2's `{{ value }}`: Python `str(value)`. */
function show(value: unknown): string {
  const s = pythonStr(value === undefined ? null : value);
  if (s === null) throw new TypeError(`cannot render a value of type ${typeof value} in a prompt`);
  return s;
}

/** Python truthiness of a value as jinja2 `{% if %}` sees it. */
function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "" || value === 0n) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value).length > 0;
  if (typeof value === "number" && Number.isNaN(value)) return true;
  return true;
}

/** A tool name as jinja renders `t.tool_name` after `model_dump()`: builtin names are `BuiltinTool` enums. */
function toolNameText(name: string): string {
  return isBuiltinTool(name) ? `BuiltinTool.${name}` : name;
}

function parametersOf(tool: ToolDefinition): Array<[string, ToolParamDefinition]> {
  if (tool.parameters === null || tool.parameters === undefined) {
    // The templates call `t.parameters.items()` / `.copy()`, which fails on None.
    throw new TypeError(`custom tool '${tool.toolName}' has no parameters (the reference templates require a dict)`);
  }
  return Object.entries(tool.parameters);
}

function requiredNames(params: Array<[string, ToolParamDefinition]>): string[] {
  return params.filter(([, p]) => (p.required === undefined ? true : p.required) === true).map(([name]) => name);
}

/** `SystemDefaultGenerator`: `Cutting Knowledge Date: December 2023\nToday Date: DD Month YYYY`. */
export function systemDefaultPrompt(today: Date = new Date()): string {
  return `Cutting Knowledge Date: December 2023\nToday Date: ${formatTodayDate(today)}`;
}

/**
 * `BuiltinToolGenerator` over tool names: `Environment: ipython` when there is any tool, then
 * `Tools: …` listing the builtin tools other than code_interpreter (in the given order), if any.
 * Returns `Environment: ipython\nTools: a, b`, `Environment: ipython\n` or "".
 */
export function builtinToolsPrompt(toolNames: readonly string[]): string {
  if (toolNames.length === 0) return "";
  const listed = toolNames.filter((n) => isBuiltinTool(n) && n !== "code_interpreter");
  return listed.length > 0 ? `Environment: ipython\nTools: ${listed.join(", ")}` : "Environment: ipython\n";
}

/** `JsonCustomToolGenerator`: the hand-built pseudo-JSON tool list of the Llama 3.1 json tool format. */
export function jsonCustomToolsPrompt(tools: readonly ToolDefinition[]): string {
  let out =
    "Answer the user's question by making use of the following functions if needed.\n" +
    "If none of the function can be used, please say so.\n" +
    "Here is a list of functions in JSON format:\n";
  for (const tool of tools) {
    const params = parametersOf(tool);
    const properties = params
      .map(
        ([name, p]) =>
          `\n                {\n                    "${name}": {\n                        "type": "object",\n` +
          `                        "description": "${show(p.description)}"\n                    }\n                }`,
      )
      .join(",");
    out +=
      `{\n    "type": "function",\n    "function": {\n        "name": "${toolNameText(tool.toolName)}",\n` +
      `        "description": "${show(tool.description)}",\n        "parameters": {\n` +
      `            "type": "object",\n            "properties": [${properties}\n            ],\n` +
      `            "required": ${jinja2ToJson(requiredNames(params))}\n        }\n    }\n}\n`;
  }
  return out + "\nReturn function calls in JSON format.";
}

/** `FunctionTagCustomToolGenerator`: the `<function=…>` tool format of Llama 3.1. */
export function functionTagCustomToolsPrompt(tools: readonly ToolDefinition[]): string {
  let out = "You have access to the following functions:\n\n";
  for (const tool of tools) {
    const params: Record<string, unknown> = {};
    for (const [name, p] of parametersOf(tool)) {
      // model_dump() without "default" (the template pops it)
      params[name] = {
        param_type: p.paramType,
        description: p.description ?? null,
        required: p.required === undefined ? true : p.required,
      };
    }
    const name = toolNameText(tool.toolName);
    const description = show(tool.description);
    out +=
      `Use the function '${name}' to '${description}':\n` +
      `{"name": "${name}", "description": "${description}", "parameters": ${jinja2ToJson(params)}}\n\n`;
  }
  return (
    out +
    "Think very carefully before calling functions.\n" +
    "If you choose to call a function ONLY reply in the following format with no prefix or suffix:\n\n" +
    '<function=example_function_name>{"example_name": "example_value"}</function>\n\n' +
    "Reminder:\n" +
    "- If looking for real time information use relevant functions before falling back to brave_search\n" +
    "- Function calls MUST follow the specified format, start with <function= and end with </function>\n" +
    "- Required parameters MUST be specified\n" +
    "- Only call one function at a time\n" +
    "- Put the entire function call reply on one line"
  );
}

/** The `{{ function_description }}` of the python_list (Llama 3.2 zero-shot) format. */
export function pythonListFunctionDescription(tools: readonly ToolDefinition[]): string {
  const blocks = tools.map((tool) => {
    const params = parametersOf(tool);
    const properties = params
      .map(([name, p]) => {
        const defaultLine = truthy(p.default) ? `,\n                    "default": "${show(p.default)}"` : "";
        return (
          `\n                "${name}": {\n                    "type": "${show(p.paramType)}",\n` +
          `                    "description": "${show(p.description)}"${defaultLine}\n                }`
        );
      })
      .join(",");
    return (
      `{\n        "name": "${toolNameText(tool.toolName)}",\n        "description": "${show(tool.description)}",\n` +
      `        "parameters": {\n            "type": "dict",\n            "required": ${jinja2ToJson(requiredNames(params))},\n` +
      `            "properties": {${properties}\n            }\n        }\n    }`
    );
  });
  return (
    "If you decide to invoke any of the function(s), you MUST put it in the format of " +
    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]\n" +
    "You SHOULD NOT include any other text in the response.\n\n" +
    "Here is a list of functions in JSON format that you can invoke.\n\n" +
    `[\n    ${blocks.join(",\n    ")}\n]`
  );
}

export const PYTHON_LIST_DEFAULT_SYSTEM_PROMPT =
  "You are an expert in composing functions. You are given a question and a set of possible functions.\n" +
  "Based on the question, you will need to make one or more function/tool calls to achieve the purpose.\n" +
  "If none of the function can be used, point it out. If the given question lacks the parameters required by the function,\n" +
  "also point it out. You should only return the function call in tools call sections.\n\n" +
  "{{ function_description }}\n";

/**
 * Renders a template string the way `jinja2.Template(source).render(...)` does with default settings:
 * no block trimming, one trailing newline dropped, jinja2's own `tojson`.
 */
export function renderPlainJinja(source: string, variables: Record<string, unknown>): string {
  return new JinjaTemplate(source, { trimBlocks: false, lstripBlocks: false, tojson: "jinja2" }).render(variables);
}

/**
 * `PythonListCustomToolGenerator`: the python_list system prompt. `systemPrompt` (default
 * {@link PYTHON_LIST_DEFAULT_SYSTEM_PROMPT}) is a jinja template that receives `function_description`.
 */
export function pythonListCustomToolsPrompt(tools: readonly ToolDefinition[], systemPrompt?: string | null): string {
  const template = systemPrompt || PYTHON_LIST_DEFAULT_SYSTEM_PROMPT;
  return renderPlainJinja(template, { function_description: pythonListFunctionDescription(tools) });
}

export interface ToolResponse {
  status: "success" | "failure";
  stdout?: string | null;
  stderr?: string | null;
}

/** `ToolResponseGenerator`: `completed`/`failed`, then `\n[stdout]…[/stdout]` and `\n[stderr]…[/stderr]` when non-empty. */
export function toolResponsePrompt(response: ToolResponse): string {
  if (response.status !== "success" && response.status !== "failure") {
    throw new ChatFormatError("ValueError", `status must be 'success' or 'failure'; Got: ${String(response.status)}`);
  }
  let out = response.status === "success" ? "completed" : "failed";
  if (truthy(response.stdout)) out += `\n[stdout]${response.stdout}[/stdout]`;
  if (truthy(response.stderr)) out += `\n[stderr]${response.stderr}[/stderr]`;
  return out;
}

/** `LLama31Interface.tool_response_messages`: the tool result as a `tool` (ipython) message. */
export function toolResponseMessage(response: ToolResponse): Message {
  return { role: "tool", content: toolResponsePrompt(response) };
}

export interface Llama31SystemMessagesOptions {
  builtinTools?: readonly BuiltinTool[];
  customTools?: readonly ToolDefinition[];
  /** Appended after a blank line when non-empty. */
  instruction?: string | null;
  /** json (default) or function_tag; python_list is not a Llama 3.1 format and raises. */
  toolPromptFormat?: ToolPromptFormat;
  /** The "Today Date" (default: now). */
  today?: Date;
}

/**
 * `LLama31Interface.system_messages`: the system message (tool environment, knowledge cut-off and
 * today's date, instruction, final newline) and, with custom tools, a user message describing them.
 */
export function llama31SystemMessages(options: Llama31SystemMessagesOptions = {}): Message[] {
  const builtinTools = options.builtinTools ?? [];
  const customTools = options.customTools ?? [];
  let content = "";
  if (builtinTools.length > 0 || customTools.length > 0) {
    content += builtinToolsPrompt([...builtinTools, ...customTools.map((t) => t.toolName)]) + "\n";
  }
  content += systemDefaultPrompt(options.today);
  if (options.instruction) content += "\n\n" + options.instruction;
  content += "\n";
  const messages: Message[] = [{ role: "system", content }];
  if (customTools.length > 0) {
    const format = options.toolPromptFormat ?? "json";
    if (format === "json") messages.push({ role: "user", content: jsonCustomToolsPrompt(customTools) });
    else if (format === "function_tag") messages.push({ role: "user", content: functionTagCustomToolsPrompt(customTools) });
    else throw new ChatFormatError("ValueError", `Non supported ToolPromptFormat ${format}`);
  }
  return messages;
}
