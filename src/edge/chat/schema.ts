/**
 * The OpenAI Chat Completions request, validated once at the boundary. Unknown top-level fields are ignored
 * (clients send `store`, `metadata`, `service_tier`, … and new ones appear often); fields we cannot honour
 * (`n` > 1, `logit_bias`, images, audio, JSON mode) are rejected with a 400 naming the field rather than
 * silently dropped. Non-standard extensions used by vLLM are accepted too: `top_k`, `repetition_penalty`,
 * `stop_token_ids`, and ours, `tool_prompt_format`.
 */
import { z } from "zod";

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const imagePart = z.object({ type: z.literal("image_url") }).loose();
const audioPart = z.object({ type: z.literal("input_audio") }).loose();
const filePart = z.object({ type: z.literal("file") }).loose();

/** Text content: a string or text parts. Images, audio and files are refused (a text-only model). */
const textContent = z.union([z.string(), z.array(textPart).min(1)]);
const userContent = z.union([
  z.string(),
  z
    .array(z.discriminatedUnion("type", [textPart, imagePart, audioPart, filePart]))
    .min(1)
    .superRefine((parts, ctx) => {
      parts.forEach((part, i) => {
        if (part.type !== "text") {
          ctx.addIssue({ code: "custom", path: [i, "type"], message: `"${part.type}" content is not supported by this text-only model` });
        }
      });
    }),
]);

export const toolCallSchema = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.object({ name: z.string().min(1).max(256), arguments: z.string() }),
});

const systemMessage = z.object({ role: z.enum(["system", "developer"]), content: textContent, name: z.string().optional() });
const userMessage = z.object({ role: z.literal("user"), content: userContent, name: z.string().optional() });
const assistantMessage = z.object({
  role: z.literal("assistant"),
  content: textContent.nullish(),
  tool_calls: z.array(toolCallSchema).optional(),
  name: z.string().optional(),
  refusal: z.string().nullish(),
});
const toolMessage = z.object({ role: z.literal("tool"), content: textContent, tool_call_id: z.string().min(1) });

export const chatMessageSchema = z.discriminatedUnion("role", [systemMessage, userMessage, assistantMessage, toolMessage], {
  error: (issue) =>
    issue.code === "invalid_union" ? "role must be one of system, developer, user, assistant, tool" : undefined,
});

/** JSON Schema subset of a function's parameters (validated loosely: it is passed to the model as text). */
const jsonSchemaObject = z.record(z.string(), z.unknown());

export const functionToolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of letters, digits, _ and -"),
    description: z.string().optional(),
    parameters: jsonSchemaObject.optional(),
    strict: z.boolean().nullish(),
  }),
});

/** Llama 3.1 built-in tools (our extension: `{"type": "builtin", "name": "brave_search"}`). */
export const BUILTIN_TOOLS = ["brave_search", "wolfram_alpha", "code_interpreter"] as const;
export const builtinToolSchema = z.object({ type: z.literal("builtin"), name: z.enum(BUILTIN_TOOLS) });

export const toolSchema = z.discriminatedUnion("type", [functionToolSchema, builtinToolSchema]);

export const toolChoiceSchema = z.union([
  z.enum(["none", "auto", "required"]),
  z.object({ type: z.literal("function"), function: z.object({ name: z.string().min(1) }) }),
]);

const stopSchema = z.union([z.string(), z.array(z.string()).max(16)]);

/** Sampling fields shared by chat completions, completions and the chat function. */
export const samplingFields = {
  max_tokens: z.int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.int().min(0).nullish(),
  seed: z.int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop: stopSchema.nullish(),
  stop_token_ids: z.array(z.int().min(0)).max(64).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).max(2).nullish(),
  n: z
    .int()
    .min(1)
    .nullish()
    .refine((n) => n == null || n === 1, "only n = 1 is supported (one choice per request); send several requests instead"),
  logit_bias: z
    .record(z.string(), z.number())
    .nullish()
    .refine((b) => b == null || Object.keys(b).length === 0, "logit_bias is not supported"),
  user: z.string().max(256).optional(),
};

export const chatCompletionRequestSchema = z
  .object({
    model: z.string().min(1),
    messages: z.array(chatMessageSchema).min(1),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
    max_completion_tokens: z.int().min(1).nullish(),
    ...samplingFields,
    logprobs: z.boolean().nullish(),
    top_logprobs: z.int().min(0).max(20).nullish(),
    tools: z.array(toolSchema).max(128).nullish(),
    tool_choice: toolChoiceSchema.nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    tool_prompt_format: z.enum(["json", "function_tag", "python_list"]).nullish(),
    response_format: z
      .object({ type: z.string() })
      .loose()
      .nullish()
      .refine((f) => f == null || f.type === "text", 'only response_format {"type": "text"} is supported'),
    modalities: z
      .array(z.string())
      .nullish()
      .refine((m) => m == null || m.every((x) => x === "text"), 'only the "text" modality is supported'),
    audio: z
      .unknown()
      .refine((a) => a == null, "audio output is not supported")
      .optional(),
  })
  .superRefine((r, ctx) => {
    if (r.top_logprobs != null && r.top_logprobs > 0 && r.logprobs !== true) {
      ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "requires logprobs: true" });
    }
    if (r.stream_options != null && r.stream !== true) {
      ctx.addIssue({ code: "custom", path: ["stream_options"], message: "is only allowed with stream: true" });
    }
    const choice = r.tool_choice;
    if (choice != null && choice !== "none" && choice !== "auto" && (r.tools == null || r.tools.length === 0)) {
      ctx.addIssue({ code: "custom", path: ["tool_choice"], message: "requires tools" });
    }
    if (typeof choice === "object" && choice !== null && r.tools) {
      const names = r.tools.map((t) => (t.type === "function" ? t.function.name : t.name));
      if (!names.includes(choice.function.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["tool_choice", "function", "name"],
          message: `"${choice.function.name}" is not one of the tools (${names.join(", ")})`,
        });
      }
    }
  });

export type ChatCompletionRequest = z.output<typeof chatCompletionRequestSchema>;
export type ChatMessage = z.output<typeof chatMessageSchema>;
export type Tool = z.output<typeof toolSchema>;
export type ToolChoice = z.output<typeof toolChoiceSchema>;
