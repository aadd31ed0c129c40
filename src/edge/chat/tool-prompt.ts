/**
 * OpenAI `tools` / `tool_choice` as the Llama 3.1 tool prompt of llama-models (`LLama31Interface.system_messages`,
 * built by the text core's prompts.ts): a system turn with `Environment: ipython`, the builtin tool list, the
 * knowledge cut-off and today's date, and the caller's first system message as the instruction; custom tools
 * described in a user turn right after it (json or function_tag format), or, for `python_list` (the Llama 3.2
 * zero-shot format), in the system turn.
 *
 * `tool_choice` is honoured in the prompt, as far as a prompt can: `none` offers no tools (handled by the
 * caller), a named function offers only that function, and `required` / a named function add one sentence to
 * the instruction. Nothing constrains decoding, so the model may still answer in prose; the answer is then
 * returned as content with finish_reason "stop".
 */
import type { Message } from "../../llama/chat-format.js";
import { llama31SystemMessages, pythonListCustomToolsPrompt, type ToolDefinition, type ToolParamDefinition } from "../../llama/prompts.js";
import type { BuiltinTool, ToolPromptFormat } from "../../llama/tool-calls.js";
import { badRequest } from "../errors.js";
import type { Tool, ToolChoice } from "./schema.js";

/** JSON Schema `type` as the parameter type text the Llama prompts show. */
function paramType(schema: Record<string, unknown>): string {
  const t = schema.type;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) return t.filter((x) => typeof x === "string").join(" | ") || "any";
  if (Array.isArray(schema.enum)) return "string";
  return "any";
}

/** An OpenAI function tool as a llama-models ToolDefinition (one parameter per top-level property). */
export function toolDefinition(tool: Extract<Tool, { type: "function" }>): ToolDefinition {
  const schema = tool.function.parameters ?? {};
  const properties = (typeof schema.properties === "object" && schema.properties !== null ? schema.properties : {}) as Record<string, unknown>;
  const required = new Set(Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === "string") : []);
  const parameters: Record<string, ToolParamDefinition> = {};
  for (const [name, value] of Object.entries(properties)) {
    const property = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
    parameters[name] = {
      paramType: paramType(property),
      description: typeof property.description === "string" ? property.description : null,
      required: required.has(name),
      ...(property.default !== undefined ? { default: property.default } : {}),
    };
  }
  return { toolName: tool.function.name, description: tool.function.description ?? null, parameters };
}

function contentText(content: Message["content"]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

function choiceSentence(choice: ToolChoice): string | null {
  if (choice === "required") return "You must call one of the functions.";
  if (typeof choice === "object") return `You must call the function '${choice.function.name}'.`;
  return null;
}

/** The conversation with the tool prompt in front (the first system message becomes the instruction). */
export function toolPromptMessages(messages: Message[], tools: Tool[], choice: ToolChoice, format: ToolPromptFormat): Message[] {
  const builtinTools = tools.filter((t) => t.type === "builtin").map((t) => t.name as BuiltinTool);
  const customTools = tools.filter((t): t is Extract<Tool, { type: "function" }> => t.type === "function").map(toolDefinition);
  let rest = messages;
  let instruction = "";
  if (rest[0]?.role === "system") {
    instruction = contentText(rest[0].content);
    rest = rest.slice(1);
  }
  const sentence = choiceSentence(choice);
  if (sentence !== null) instruction = instruction === "" ? sentence : `${instruction}\n\n${sentence}`;

  if (format === "python_list") {
    if (builtinTools.length > 0) {
      throw badRequest('tools: builtin tools need tool_prompt_format "json" or "function_tag"', "tool_prompt_format");
    }
    const system = pythonListCustomToolsPrompt(customTools) + (instruction === "" ? "" : `\n${instruction}\n`);
    return [{ role: "system", content: system }, ...rest];
  }
  return [...llama31SystemMessages({ builtinTools, customTools, instruction, toolPromptFormat: format }), ...rest];
}
