/**
 * Validation of untrusted chat input at the boundary (zod): messages, tool calls and tool definitions
 * as {@link ChatFormat} and the prompt builders take them. Errors name the field path, e.g.
 * `messages[2].content[0].text: expected string`.
 *
 * The shapes follow the reference data model (models/datatypes.py): tool-call arguments are a string or
 * a dict whose values are primitives, lists of primitives or dicts of primitives (deeper nesting is
 * refused, as pydantic refuses it). Objects are strict, so a misspelt key (`tool_calls` for `toolCalls`)
 * is reported rather than silently dropped. Text is accepted as is: the chat format encodes it without
 * special-token handling, so no content can yield ids >= 128000.
 */

import * as z from "zod";
import type { Message } from "./chat-format.js";
import type { ToolDefinition } from "./prompts.js";
import type { ToolCall, ToolPromptFormat } from "./tool-calls.js";

export const roleSchema = z.enum(["system", "user", "assistant", "tool"]);
export const stopReasonSchema = z.enum(["end_of_turn", "end_of_message", "out_of_tokens"]);
export const toolPromptFormatSchema = z.enum(["json", "function_tag", "python_list"]);

/** `Primitive = str | int | float | bool | None` (finite numbers: JSON has no NaN). */
const primitiveSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** `RecursiveType`: a primitive, a list of primitives, or a dict of primitives. */
const argumentValueSchema = z.union([primitiveSchema, z.array(primitiveSchema), z.record(z.string(), primitiveSchema)]);

export const toolCallSchema = z.strictObject({
  callId: z.string(),
  toolName: z.string().min(1),
  arguments: z.union([z.string(), z.record(z.string(), argumentValueSchema)]),
});

export const textContentItemSchema = z.strictObject({ type: z.literal("text"), text: z.string() });
export const messageContentSchema = z.union([z.string(), z.array(textContentItemSchema)]);

export const messageSchema = z.strictObject({
  role: roleSchema,
  content: messageContentSchema,
  context: messageContentSchema.nullish(),
  stopReason: stopReasonSchema.nullish(),
  toolCalls: z.array(toolCallSchema).optional(),
});

export const messagesSchema = z.array(messageSchema);

export const toolParamDefinitionSchema = z.strictObject({
  paramType: z.string(),
  description: z.string().nullish(),
  required: z.boolean().nullish(),
  default: z.unknown().optional(),
});

export const toolDefinitionSchema = z.strictObject({
  toolName: z.string().min(1),
  description: z.string().nullish(),
  parameters: z.record(z.string(), toolParamDefinitionSchema),
});

/** Invalid input: `issues` are `path: problem` lines, `message` joins them. */
export class MessageValidationError extends Error {
  override readonly name = "MessageValidationError";
  constructor(readonly issues: readonly string[]) {
    super(issues.join("; "));
  }
}

type Issue = z.core.$ZodIssue;

/** `messages[2].content[0].text` from a root name and a zod path. */
export function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (typeof key === "string" && /^[A-Za-z_$][\w$]*$/.test(key)) out += `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

function describeIssue(issue: Issue): string {
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected}`;
    case "invalid_value":
      return `expected ${issue.values.map((v) => JSON.stringify(v)).join(" | ")}`;
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    case "too_small":
      return issue.origin === "string" ? "must not be empty" : issue.message;
    default:
      return issue.message;
  }
}

/**
 * Flattens zod issues into `path: problem` lines. For a union, the branch that got furthest into the
 * input explains the failure (`content[0].text: expected string` rather than "invalid input"); when
 * every branch fails at the value itself, the expected types are listed together.
 */
function flatten(issues: readonly Issue[], root: string, prefix: readonly PropertyKey[] = []): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      const depth = (branch: readonly Issue[]) => Math.max(...branch.map((i) => i.path.length));
      const deepest = issue.errors.reduce((best, branch) => (depth(branch) > depth(best) ? branch : best));
      if (depth(deepest) > 0) {
        lines.push(...flatten(deepest, root, path));
      } else {
        const expected = issue.errors.flat().map((i) => (i.code === "invalid_type" ? i.expected : describeIssue(i)));
        lines.push(`${formatPath(root, path)}: expected ${[...new Set(expected)].join(" | ")}`);
      }
      continue;
    }
    lines.push(`${formatPath(root, path)}: ${describeIssue(issue)}`);
  }
  return lines;
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, root: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new MessageValidationError(flatten(result.error.issues, root));
  return result.data;
}

/** Validates a list of messages from an untrusted source; throws {@link MessageValidationError}. */
export function parseMessages(input: unknown, root = "messages"): Message[] {
  return parseWith(messagesSchema, input, root) as Message[];
}

export function parseMessage(input: unknown, root = "message"): Message {
  return parseWith(messageSchema, input, root) as Message;
}

export function parseToolCall(input: unknown, root = "toolCall"): ToolCall {
  return parseWith(toolCallSchema, input, root) as ToolCall;
}

export function parseToolDefinitions(input: unknown, root = "tools"): ToolDefinition[] {
  return parseWith(z.array(toolDefinitionSchema), input, root) as ToolDefinition[];
}

export function parseToolPromptFormat(input: unknown, root = "toolPromptFormat"): ToolPromptFormat {
  return parseWith(toolPromptFormatSchema, input, root);
}
