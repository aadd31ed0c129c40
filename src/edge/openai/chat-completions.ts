/**
 * `POST /v1/chat/completions`, OpenAI-compatible, streaming (server-sent `chat.completion.chunk` events) and
 * not. The turn itself (prompt, routing, tool-call parsing) is chat/run.ts; this module only speaks the wire
 * format: role chunk first, content and tool-call deltas, one finish chunk, the optional usage chunk,
 * `data: [DONE]`; a failure after the 200 has been sent becomes a `data: {"error": …}` event.
 */
import { readJsonBody } from "../body.js";
import { startChat, type ChatEvent } from "../chat/run.js";
import { chatCompletionRequestSchema } from "../chat/schema.js";
import type { OpenAiToolCall } from "../chat/prompt.js";
import type { EdgeHandler } from "../services.js";
import { SseStream } from "../sse.js";
import { chatLogprobs, nowSeconds, responseId, type ChatTokenLogprob } from "./format.js";
import { checkModel } from "./models.js";
import { ApiError } from "../errors.js";

export const chatCompletions: EdgeHandler = async (request, context) => {
  const { services } = context;
  const body = await readJsonBody(request, services.config.maxBodyBytes, chatCompletionRequestSchema);
  checkModel(body.model, services.config);
  const tokenizer = services.tokenizer();
  const id = responseId("chatcmpl", context.requestId);
  const created = nowSeconds();
  const model = body.model;
  const wantLogprobs = body.logprobs === true;

  if (body.stream !== true) {
    const chat = await startChat(request, context, body, { sessions: true, signal: request.signal });
    let content = "";
    let toolCalls: OpenAiToolCall[] = [];
    const logprobs: ChatTokenLogprob[] = [];
    for await (const event of chat.events) {
      if (event.type === "content") {
        content += event.text;
        if (wantLogprobs) logprobs.push(...chatLogprobs(tokenizer, event.tokens));
      } else if (event.type === "tool_calls") {
        toolCalls = event.calls;
      } else if (event.type === "error") {
        throw new ApiError(event.code === "deadline_exceeded" ? 504 : 502, event.message, "server_error", event.code);
      } else if (event.type === "finish") {
        if (wantLogprobs) logprobs.push(...chatLogprobs(tokenizer, event.tokens));
        return Response.json({
          id,
          object: "chat.completion",
          created,
          model,
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
              logprobs: wantLogprobs ? { content: logprobs, refusal: null } : null,
              finish_reason: event.finishReason,
            },
          ],
          usage: event.usage,
        });
      }
    }
    throw new ApiError(502, "the generation ended without a result", "server_error", "gpu_worker_failed");
  }

  const sse = new SseStream(services.config.sseKeepaliveMs);
  let chat;
  try {
    chat = await startChat(request, context, body, { sessions: true, signal: sse.signal });
  } catch (error) {
    sse.close();
    throw error;
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (delta: Record<string, unknown>, finishReason: string | null, logprobs: ChatTokenLogprob[] | null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: logprobs === null ? null : { content: logprobs, refusal: null }, finish_reason: finishReason }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const lp = (event: Extract<ChatEvent, { tokens: unknown }>) => (wantLogprobs ? chatLogprobs(tokenizer, event.tokens) : null);

  const pump = async () => {
    try {
      sse.data(chunk({ role: "assistant", content: "" }, null, null));
      for await (const event of chat.events) {
        if (event.type === "content") {
          if (event.text !== "" || wantLogprobs) sse.data(chunk({ content: event.text }, null, lp(event)));
        } else if (event.type === "tool_calls") {
          event.calls.forEach((call, index) => {
            sse.data(chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }] }, null, null));
            sse.data(chunk({ tool_calls: [{ index, function: { arguments: call.function.arguments } }] }, null, null));
          });
        } else if (event.type === "finish") {
          const tail = lp(event);
          sse.data(chunk({}, event.finishReason, tail !== null && tail.length > 0 ? tail : null));
          if (includeUsage) {
            sse.data({ id, object: "chat.completion.chunk", created, model, system_fingerprint: null, choices: [], usage: event.usage });
          }
          sse.data("[DONE]");
        } else if (event.type === "error") {
          sse.data({ error: { message: event.message, type: "server_error", param: null, code: event.code } });
        }
      }
    } catch (error) {
      services.log({ event: "stream_failed", request_id: context.requestId, error: String(error) });
      sse.data({ error: { message: "internal error in the gateway", type: "server_error", param: null, code: "internal_error" } });
    } finally {
      sse.close();
    }
  };
  void pump();
  return sse.response();
};
