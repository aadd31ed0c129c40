/**
 * OpenAI chat requests in the Llama 3.1 chat format, and assistant output back to OpenAI tool calls.
 *
 * Messages map one to one (system/developer → system, tool → the `ipython` role); an assistant message with
 * tool calls is re-encoded the way the model wrote it (serialised calls, `<|eom_id|>`). Without tools nothing
 * is added: the prompt is exactly llama-models' `encode_dialog_prompt` of the messages. With tools the system
 * turn is llama-models' tool system prompt (builtin tools, date, the caller's system text as instruction) and
 * custom tools are described in the format `tool_prompt_format` names (json by default).
 *
 * All token ids come from the text core's ChatFormat, which encodes message text with special tokens
 * disabled: text in a request can never become a special token.
 */
import { ChatFormat, type Message, type StopReason } from "../../llama/chat-format.js";
import { loads } from "../../llama/python-json.js";
import { EOM_ID, EOT_ID } from "../../llama/special-tokens.js";
import type { Tokenizer } from "../../llama/tokenizer.js";
import { ChatFormatError, isBuiltinTool, type ToolCall, type ToolPromptFormat } from "../../llama/tool-calls.js";
import { badRequest } from "../errors.js";
import type { ChatCompletionRequest, ChatMessage, Tool } from "./schema.js";
import { toolPromptMessages } from "./tool-prompt.js";

export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ChatPromptRequest = Pick<ChatCompletionRequest, "messages" | "tools" | "tool_choice" | "tool_prompt_format">;

export interface ChatPrompt {
  ids: number[];
  /** Length of the trailing assistant header (`add_generation_prompt`). */
  generationPromptLength: number;
  /** Tools were offered, so the answer is parsed for tool calls. */
  parseToolCalls: boolean;
  /** Names of the offered tools (only these are reported as tool calls). */
  toolNames: ReadonlySet<string>;
  format: ToolPromptFormat;
}

function text(content: string | { type: "text"; text: string }[] | null | undefined): string | { type: "text"; text: string }[] {
  if (content == null) return "";
  return typeof content === "string" ? content : content.map((p) => ({ type: "text", text: p.text }));
}

/**
 * Arguments of a tool call in the history, parsed the way Python's `json.loads` would, with floats kept as
 * floats (`1.0` stays `1.0` when re-serialised), so the call is re-encoded with the tokens the model wrote.
 */
function parseArguments(raw: string, param: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = loads(raw, { floats: "PythonFloat" });
  } catch (error) {
    throw badRequest(`${param}: must be a JSON object encoded as a string (${(error as Error).message})`, param);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest(`${param}: must encode a JSON object`, param);
  }
  return value as Record<string, unknown>;
}

/**
 * One OpenAI message as a Llama message. OpenAI history does not say how a tool-call turn ended, so it is
 * re-encoded the way Llama 3.1 ends it (llama-reference §2.5, §3.2): `<|eom_id|>` after builtin-tool calls and
 * JSON calls (the model expects a result), `<|eot_id|>` after function-tag and Python-list calls.
 */
function toLlamaMessage(m: ChatMessage, index: number, format: ToolPromptFormat): Message {
  switch (m.role) {
    case "system":
    case "developer":
      return { role: "system", content: text(m.content) };
    case "user":
      return { role: "user", content: text(m.content as string | { type: "text"; text: string }[]) };
    case "tool":
      return { role: "tool", content: text(m.content) };
    case "assistant": {
      const toolCalls: ToolCall[] = (m.tool_calls ?? []).map((call, j) => ({
        callId: call.id,
        toolName: call.function.name,
        arguments: parseArguments(call.function.arguments, `messages[${index}].tool_calls[${j}].function.arguments`),
      }));
      const expectsResult = toolCalls.some((c) => isBuiltinTool(c.toolName)) || (toolCalls.length > 0 && format === "json");
      const stopReason: StopReason = expectsResult ? "end_of_message" : "end_of_turn";
      return { role: "assistant", content: text(m.content), toolCalls, stopReason };
    }
  }
}

function offeredTools(request: ChatPromptRequest): Tool[] {
  const tools = request.tools ?? [];
  if (tools.length === 0 || request.tool_choice === "none") return [];
  const choice = request.tool_choice;
  if (typeof choice === "object" && choice !== null) {
    return tools.filter((t) => (t.type === "function" ? t.function.name : t.name) === choice.function.name);
  }
  return tools;
}

export function buildChatPrompt(tokenizer: Tokenizer, request: ChatPromptRequest): ChatPrompt {
  const format: ToolPromptFormat = request.tool_prompt_format ?? "json";
  const tools = offeredTools(request);
  let messages = request.messages.map((m, i) => toLlamaMessage(m, i, format));
  if (tools.length > 0) messages = toolPromptMessages(messages, tools, request.tool_choice ?? "auto", format);
  const chat = new ChatFormat(tokenizer);
  let ids: number[];
  try {
    ids = chat.encodeDialogPrompt(messages, format);
  } catch (error) {
    if (error instanceof ChatFormatError) throw badRequest(`messages: ${error.message}`, "messages");
    throw error;
  }
  return {
    ids,
    generationPromptLength: chat.encodeHeader("assistant").length,
    parseToolCalls: tools.length > 0,
    toolNames: new Set(tools.map((t) => (t.type === "function" ? t.function.name : t.name))),
    format,
  };
}

export interface ParsedAssistant {
  /** Tool calls among the offered tools; empty when the answer is plain content. */
  toolCalls: OpenAiToolCall[];
}

function argumentsJson(args: Record<string, unknown> | string): string {
  if (typeof args !== "string") return JSON.stringify(args);
  try {
    JSON.parse(args);
    return args;
  } catch {
    return JSON.stringify(args);
  }
}

/**
 * Parses generated ids (the sampled stop token excluded) with the text core's `decodeAssistantMessage`.
 * Output the reference parser rejects (it raises) or calls of tools that were not offered stay content, as in
 * vLLM's parser.
 */
export function parseAssistantOutput(
  tokenizer: Tokenizer,
  ids: readonly number[],
  stopTokenId: number | null,
  prompt: Pick<ChatPrompt, "toolNames">,
): ParsedAssistant {
  const stopReason: StopReason = stopTokenId === EOT_ID ? "end_of_turn" : stopTokenId === EOM_ID ? "end_of_message" : "out_of_tokens";
  let calls: ToolCall[];
  try {
    calls = new ChatFormat(tokenizer).decodeAssistantMessage(ids, stopReason).toolCalls;
  } catch (error) {
    if (error instanceof ChatFormatError) return { toolCalls: [] };
    throw error;
  }
  const offered = calls.filter((c) => prompt.toolNames.has(c.toolName));
  return {
    toolCalls: offered.map((c) => ({
      id: `call_${c.callId.replaceAll("-", "")}`,
      type: "function",
      function: { name: c.toolName, arguments: argumentsJson(c.arguments) },
    })),
  };
}
