/**
 * Use case 2, the per-request chat function: one request in, one streamed answer out, nothing remembered.
 * `POST /chat` takes the chat-completions body (`model` optional; `x-session-id` is ignored: no sticky
 * routing, no KV reuse) and answers with NDJSON, one event per line:
 *
 *   {"type":"delta","content":"Hel"}
 *   {"type":"tool_call","id":"call_…","name":"get_weather","arguments":"{\"city\": \"Paris\"}"}
 *   {"type":"done","finish_reason":"stop","usage":{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}}
 *   {"type":"error","message":"…","code":"…"}     (instead of done, if the generation fails after it began)
 *
 * Errors before the answer starts are ordinary HTTP errors with an OpenAI error body.
 */
import { z } from "zod";
import { readJsonBody } from "../src/edge/body.js";
import { startChat } from "../src/edge/chat/run.js";
import { chatCompletionRequestSchema } from "../src/edge/chat/schema.js";
import { ApiError } from "../src/edge/errors.js";
import { checkModel } from "../src/edge/openai/models.js";
import type { EdgeHandler } from "../src/edge/services.js";

const encoder = new TextEncoder();

export const handleChatFunction: EdgeHandler = async (request, context) => {
  if (request.method !== "POST") {
    throw new ApiError(405, `${request.method} is not allowed on /chat; use POST`, "invalid_request_error", "method_not_allowed");
  }
  const { services } = context;
  // `model` may be left out: the served model is meant.
  const withModel = z.preprocess(
    (v) => (typeof v === "object" && v !== null && !Array.isArray(v) && !("model" in v) ? { ...v, model: services.config.modelId } : v),
    chatCompletionRequestSchema,
  );
  const body = await readJsonBody(request, services.config.maxBodyBytes, withModel);
  checkModel(body.model, services.config);
  const abort = new AbortController();
  const chat = await startChat(request, context, { ...body, stream: true }, { sessions: false, signal: abort.signal });

  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const send = (event: Record<string, unknown>) => controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`));
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel() {
      abort.abort(new Error("client disconnected"));
    },
  });
  const pump = async () => {
    try {
      for await (const event of chat.events) {
        if (abort.signal.aborted) break;
        if (event.type === "content" && event.text !== "") send({ type: "delta", content: event.text });
        else if (event.type === "tool_calls") {
          for (const call of event.calls) send({ type: "tool_call", id: call.id, name: call.function.name, arguments: call.function.arguments });
        } else if (event.type === "finish") send({ type: "done", finish_reason: event.finishReason, usage: event.usage });
        else if (event.type === "error") send({ type: "error", message: event.message, code: event.code });
      }
    } catch (error) {
      services.log({ event: "stream_failed", request_id: context.requestId, error: String(error) });
      if (!abort.signal.aborted) send({ type: "error", message: "internal error in the gateway", code: "internal_error" });
    } finally {
      if (!abort.signal.aborted) controller.close();
    }
  };
  void pump();
  return new Response(readable, {
    headers: { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-cache, no-transform" },
  });
};
