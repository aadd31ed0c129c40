/**
 * `POST /ai/run/<model>`: the Workers AI text-generation shape (`prompt` or `messages`, `raw`, `stream`), so
 * code written for `@cf/meta/llama-3.1-8b-instruct` can point at a self-hosted pool. Answers use the REST
 * envelope (`{result: {response, tool_calls?, usage}, success, errors, messages}`); streams are
 * `data: {"response": "…"}` frames ending with a usage frame and `data: [DONE]`.
 */
import { z } from "zod";
import { readJsonBody, validate } from "../body.js";
import { startChat, type ChatEvent } from "../chat/run.js";
import { chatCompletionRequestSchema, type ChatCompletionRequest } from "../chat/schema.js";
import { ApiError } from "../errors.js";
import { checkModel } from "../openai/models.js";
import { usage } from "../openai/format.js";
import { sessionIdFrom, startRun } from "../run.js";
import type { EdgeHandler, RequestContext } from "../services.js";
import { pumpSse, SseStream } from "../sse.js";
import { textStream } from "../text-stream.js";
import { workersAiResult } from "./format.js";

/** Workers AI's default for this model family. */
const DEFAULT_MAX_TOKENS = 256;

const messageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  tool_call_id: z.string().optional(),
  tool_calls: z.array(z.object({ id: z.string().optional(), name: z.string(), arguments: z.unknown() })).optional(),
});

const toolSchema = z.union([
  z.object({ type: z.literal("function"), function: z.object({ name: z.string(), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }) }),
  z.object({ name: z.string(), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }),
]);

export const workersAiRequestSchema = z
  .object({
    prompt: z.string().min(1).max(131072).optional(),
    raw: z.boolean().default(false),
    messages: z.array(messageSchema).min(1).optional(),
    tools: z.array(toolSchema).optional(),
    functions: z
      .unknown()
      .optional()
      .refine((f) => f === undefined, "embedded function calling (functions) is not supported; use tools"),
    lora: z
      .unknown()
      .optional()
      .refine((l) => l === undefined, "LoRA adapters are not supported"),
    stream: z.boolean().default(false),
    max_tokens: z.int().min(1).default(DEFAULT_MAX_TOKENS),
    temperature: z.number().min(0).max(2).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    top_k: z.int().min(1).max(50).optional(),
    seed: z.int().min(1).max(9_999_999_999).optional(),
    repetition_penalty: z.number().gt(0).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    presence_penalty: z.number().min(-2).max(2).optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.prompt === undefined) === (r.messages === undefined)) {
      ctx.addIssue({ code: "custom", path: [r.prompt === undefined ? "messages" : "prompt"], message: "send exactly one of prompt and messages" });
    }
    if (r.raw && r.messages !== undefined) ctx.addIssue({ code: "custom", path: ["raw"], message: "raw applies to prompt only" });
  });

type WorkersAiRequest = z.output<typeof workersAiRequestSchema>;

/** The request as an OpenAI chat request (validated again, so a bad mapped field still gets a clear 400). */
function asChatRequest(model: string, body: WorkersAiRequest): ChatCompletionRequest {
  const messages =
    body.messages?.map((m, i) => {
      if (m.role === "tool") return { role: "tool", content: m.content, tool_call_id: m.tool_call_id ?? `call_${i}` };
      if (m.role === "assistant" && m.tool_calls && m.tool_calls.length > 0) {
        return {
          role: "assistant",
          content: m.content,
          tool_calls: m.tool_calls.map((c, j) => ({
            id: c.id ?? `call_${i}_${j}`,
            type: "function",
            function: { name: c.name, arguments: typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments ?? {}) },
          })),
        };
      }
      return { role: m.role, content: m.content };
    }) ?? [{ role: "user", content: body.prompt }];
  const tools = body.tools?.map((t) => ("type" in t ? t : { type: "function", function: t }));
  return validate(chatCompletionRequestSchema, {
    model,
    messages,
    ...(tools && tools.length > 0 ? { tools } : {}),
    max_tokens: body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
    seed: body.seed,
    repetition_penalty: body.repetition_penalty,
    frequency_penalty: body.frequency_penalty,
    presence_penalty: body.presence_penalty,
  });
}

/** `raw: true`: the prompt as is, with `<|begin_of_text|>`, no chat format. */
async function startRaw(request: Request, context: RequestContext, body: WorkersAiRequest, signal?: AbortSignal): Promise<AsyncGenerator<ChatEvent>> {
  const tokenizer = context.services.tokenizer();
  const started = await startRun(
    context,
    {
      promptIds: tokenizer.encode(body.prompt!, { bos: true, eos: false }),
      maxTokens: body.max_tokens,
      promptParam: "prompt",
      maxTokensParam: "max_tokens",
      sampling: body,
      logprobs: false,
      topLogprobs: 0,
      sessionId: sessionIdFrom(request),
    },
    signal,
  );
  async function* events(): AsyncGenerator<ChatEvent> {
    for await (const event of textStream(started.generation, tokenizer, { stop: [], skipSpecialTokens: true })) {
      if (event.type === "delta") yield { type: "content", text: event.text, tokens: event.tokens };
      else if (event.type === "waiting") yield { type: "waiting" };
      else if (event.type === "error") yield event;
      else if (event.type === "end") {
        yield { type: "finish", finishReason: event.finishReason, usage: usage(started.promptTokens, event.completionTokens), tokens: [] };
      }
    }
  }
  return events();
}

function toolCallsOut(calls: { function: { name: string; arguments: string } }[]) {
  return calls.map((c) => {
    let args: unknown = c.function.arguments;
    try {
      args = JSON.parse(c.function.arguments);
    } catch {
      // keep the string
    }
    return { name: c.function.name, arguments: args };
  });
}

export const workersAiRun: EdgeHandler = async (request, context) => {
  const { services } = context;
  const model = decodeURIComponent(new URL(request.url).pathname.replace(/^\/ai\/run\//, ""));
  checkModel(model, services.config);
  const body = await readJsonBody(request, services.config.maxBodyBytes, workersAiRequestSchema);
  const start = (signal?: AbortSignal) =>
    body.raw ? startRaw(request, context, body, signal) : startChat(request, context, asChatRequest(model, body), { sessions: true, signal }).then((c) => c.events);

  if (!body.stream) {
    const events = await start(request.signal);
    let response = "";
    let calls: ReturnType<typeof toolCallsOut> = [];
    for await (const event of events) {
      if (event.type === "content") response += event.text;
      else if (event.type === "tool_calls") calls = toolCallsOut(event.calls);
      else if (event.type === "error") throw new ApiError(502, event.message, "server_error", event.code);
      else if (event.type === "finish") {
        return workersAiResult({ response, ...(calls.length > 0 ? { tool_calls: calls } : {}), usage: event.usage });
      }
    }
    throw new ApiError(502, "the generation ended without a result", "server_error", "gpu_worker_failed");
  }

  const sse = new SseStream(services.config.sseKeepaliveMs);
  let events: AsyncGenerator<ChatEvent>;
  try {
    events = await start(sse.signal);
  } catch (error) {
    sse.close();
    throw error;
  }
  async function* payloads(): AsyncGenerator<unknown> {
    for await (const event of events) {
      if (event.type === "content" && event.text !== "") yield { response: event.text };
      else if (event.type === "tool_calls") yield { response: "", tool_calls: toolCallsOut(event.calls) };
      else if (event.type === "finish") {
        yield { response: "", usage: event.usage };
        yield "[DONE]";
        return;
      } else if (event.type === "error") {
        yield { errors: [{ code: 502, message: event.message }] };
        return;
      }
    }
  }
  void pumpSse(sse, payloads(), { errors: [{ code: 500, message: "internal error in the gateway" }] }, (error) =>
    services.log({ event: "stream_failed", request_id: context.requestId, error: String(error) }),
  );
  return sse.response();
};
