/**
 * `POST /v1/chat/completions`, OpenAI-compatible, streaming (server-sent `chat.completion.chunk` events) and
 * not. The turn itself (prompt, routing, tool-call parsing) is chat/run.ts; this module only speaks the wire
 * format: role chunk first, content and tool-call deltas, one finish chunk, the optional usage chunk,
 * `data: [DONE]`; a failure after the 200 has been sent becomes a `data: {"error": …}` event.
 */
import type { Tokenizer } from "../../llama/tokenizer.js";
import { readJsonBody } from "../body.js";
import type { OpenAiToolCall } from "../chat/prompt.js";
import { startChat, type ChatEvent, type StartedChat } from "../chat/run.js";
import { chatCompletionRequestSchema } from "../chat/schema.js";
import { ApiError } from "../errors.js";
import type { EdgeHandler } from "../services.js";
import { pumpSse, SseStream } from "../sse.js";
import { chatLogprobs, nowSeconds, OPENAI_STREAM_FAILURE, responseId, type ChatTokenLogprob } from "./format.js";
import { checkModel } from "./models.js";

export interface ChatResponseMeta {
  id: string;
  created: number;
  model: string;
  tokenizer: Tokenizer;
  logprobs: boolean;
  includeUsage: boolean;
}

/** The events of one turn as a `chat.completion` object; a failed generation throws (nothing was sent yet). */
export async function chatCompletionResponse(events: AsyncIterable<ChatEvent>, meta: ChatResponseMeta): Promise<Record<string, unknown>> {
  let content = "";
  let toolCalls: OpenAiToolCall[] = [];
  const logprobs: ChatTokenLogprob[] = [];
  for await (const event of events) {
    if (event.type === "content") {
      content += event.text;
      if (meta.logprobs) logprobs.push(...chatLogprobs(meta.tokenizer, event.tokens));
    } else if (event.type === "tool_calls") {
      toolCalls = event.calls;
    } else if (event.type === "error") {
      throw new ApiError(event.code === "deadline_exceeded" ? 504 : 502, event.message, "server_error", event.code);
    } else if (event.type === "finish") {
      if (meta.logprobs) logprobs.push(...chatLogprobs(meta.tokenizer, event.tokens));
      return {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        system_fingerprint: null,
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content: toolCalls.length > 0 && content === "" ? null : content,
              refusal: null,
              ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
            },
            logprobs: meta.logprobs ? { content: logprobs, refusal: null } : null,
            finish_reason: event.finishReason,
          },
        ],
        usage: event.usage,
      };
    }
  }
  throw new ApiError(502, "the generation ended without a result", "server_error", "gpu_worker_failed");
}

/**
 * The events of one turn as the `data:` payloads of an OpenAI stream. Tool calls are sent per call as a
 * first delta with index, id, type and name (empty arguments) and a second with the argument text.
 */
export async function* chatCompletionChunks(events: AsyncIterable<ChatEvent>, meta: ChatResponseMeta): AsyncGenerator<unknown> {
  const chunk = (delta: Record<string, unknown>, finishReason: string | null, logprobs: ChatTokenLogprob[] | null) => ({
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: logprobs === null ? null : { content: logprobs, refusal: null }, finish_reason: finishReason }],
    ...(meta.includeUsage ? { usage: null } : {}),
  });
  const lp = (tokens: Extract<ChatEvent, { tokens: unknown }>["tokens"]) => (meta.logprobs ? chatLogprobs(meta.tokenizer, tokens) : null);

  yield chunk({ role: "assistant", content: "" }, null, null);
  for await (const event of events) {
    if (event.type === "content") {
      if (event.text !== "" || (meta.logprobs && event.tokens.length > 0)) yield chunk({ content: event.text }, null, lp(event.tokens));
    } else if (event.type === "tool_calls") {
      for (const [index, call] of event.calls.entries()) {
        yield chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] }, null, null);
        yield chunk({ tool_calls: [{ index, function: { arguments: call.function.arguments } }] }, null, null);
      }
    } else if (event.type === "finish") {
      const tail = lp(event.tokens);
      yield chunk({}, event.finishReason, tail !== null && tail.length > 0 ? tail : null);
      if (meta.includeUsage) {
        yield { id: meta.id, object: "chat.completion.chunk", created: meta.created, model: meta.model, system_fingerprint: null, choices: [], usage: event.usage };
      }
      yield "[DONE]";
      return;
    } else if (event.type === "error") {
      yield { error: { message: event.message, type: "server_error", param: null, code: event.code } };
      return;
    }
  }
}

export const chatCompletions: EdgeHandler = async (request, context) => {
  const { services } = context;
  const body = await readJsonBody(request, services.config.maxBodyBytes, chatCompletionRequestSchema);
  checkModel(body.model, services.config);
  const meta: ChatResponseMeta = {
    id: responseId("chatcmpl", context.requestId),
    created: nowSeconds(),
    model: body.model,
    tokenizer: services.tokenizer(),
    logprobs: body.logprobs === true,
    includeUsage: body.stream_options?.include_usage === true,
  };

  if (body.stream !== true) {
    const chat = await startChat(request, context, body, { sessions: true, signal: request.signal });
    return Response.json(await chatCompletionResponse(chat.events, meta));
  }

  const sse = new SseStream(services.config.sseKeepaliveMs);
  let chat: StartedChat;
  try {
    chat = await startChat(request, context, body, { sessions: true, signal: sse.signal });
  } catch (error) {
    sse.close();
    throw error;
  }
  void pumpSse(sse, chatCompletionChunks(chat.events, meta), OPENAI_STREAM_FAILURE, (error) =>
    services.log({ event: "stream_failed", request_id: context.requestId, error: String(error) }),
  );
  return sse.response();
};
