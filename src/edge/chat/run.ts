/**
 * One chat turn: OpenAI messages → Llama 3.1 prompt ids → generation → content deltas and, when tools were
 * offered, tool calls parsed by the text core's `decodeAssistantMessage`.
 *
 * Streaming with tools follows vLLM's rule: output that *starts* like a tool call (`<|python_tag|>`, `{`, `[`
 * or `<function=`) is held back and parsed when the turn ends, so a client never receives half a call as
 * content; any other output streams as content at once. The parser still runs at the end in both cases, so
 * streamed and non-streamed answers report the same tool calls.
 */
import type { TokenEvent } from "../../protocol/index.js";
import type { Usage } from "../openai/format.js";
import { usage } from "../openai/format.js";
import { sessionIdFrom, startRun } from "../run.js";
import type { RequestContext } from "../services.js";
import { textStream } from "../text-stream.js";
import { buildChatPrompt, parseAssistantOutput, type OpenAiToolCall } from "./prompt.js";
import type { ChatCompletionRequest } from "./schema.js";

export type ChatFinishReason = "stop" | "length" | "tool_calls";

export type ChatEvent =
  /** The worker is busy with other requests or the prompt (nothing to show yet). */
  | { type: "waiting" }
  | { type: "content"; text: string; tokens: TokenEvent[] }
  | { type: "tool_calls"; calls: OpenAiToolCall[] }
  | { type: "finish"; finishReason: ChatFinishReason; usage: Usage; tokens: TokenEvent[] }
  | { type: "error"; message: string; code: string };

export interface StartedChat {
  events: AsyncGenerator<ChatEvent>;
  promptTokens: number;
}

export interface ChatOptions {
  /** Honour `x-session-id` (sticky routing and KV reuse); the stateless chat function passes false. */
  sessions: boolean;
  signal?: AbortSignal;
}

const TOOL_CALL_START = /^(\{|\[|<function=)/;

export async function startChat(
  request: Request,
  context: RequestContext,
  body: ChatCompletionRequest,
  options: ChatOptions,
): Promise<StartedChat> {
  const tokenizer = context.services.tokenizer();
  const prompt = buildChatPrompt(tokenizer, body);
  const stops = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const started = await startRun(
    context,
    {
      promptIds: prompt.ids,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? null,
      promptParam: "messages",
      maxTokensParam: body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens",
      sampling: body,
      logprobs: body.logprobs === true,
      topLogprobs: body.top_logprobs ?? 0,
      sessionId: options.sessions ? sessionIdFrom(request) : null,
    },
    options.signal,
  );
  const text = textStream(started.generation, tokenizer, { stop: stops, skipSpecialTokens: true });

  async function* events(): AsyncGenerator<ChatEvent> {
    // "undecided" until the first non-blank output shows whether this may be a tool call.
    let mode: "undecided" | "content" | "hold" = prompt.parseToolCalls ? "undecided" : "content";
    let held = "";
    let heldTokens: TokenEvent[] = [];
    let cachedTokens = 0;
    for await (const event of text) {
      if (event.type === "start") {
        cachedTokens = event.start.cached_tokens;
      } else if (event.type === "waiting") {
        yield { type: "waiting" };
      } else if (event.type === "error") {
        yield { type: "error", message: event.message, code: event.code };
        return;
      } else if (event.type === "delta") {
        if (mode === "content") {
          yield { type: "content", text: event.text, tokens: event.tokens };
          continue;
        }
        held += event.text;
        heldTokens.push(...event.tokens);
        if (mode === "undecided") {
          const startsWithPythonTag = heldTokens.some((t) => t.id === tokenizer.pythonTagId);
          const trimmed = held.trimStart();
          if (startsWithPythonTag || TOOL_CALL_START.test(trimmed)) mode = "hold";
          else if (trimmed !== "") {
            mode = "content";
            yield { type: "content", text: held, tokens: heldTokens };
            held = "";
            heldTokens = [];
          }
        }
      } else if (event.type === "end") {
        const parsed = prompt.parseToolCalls ? parseAssistantOutput(tokenizer, event.ids, event.stopTokenId, prompt) : null;
        const calls = parsed?.toolCalls ?? [];
        if (calls.length === 0 && held !== "") yield { type: "content", text: held, tokens: heldTokens };
        const leftover = calls.length === 0 ? event.tokens : [...heldTokens, ...event.tokens];
        if (calls.length > 0) yield { type: "tool_calls", calls };
        yield {
          type: "finish",
          finishReason: calls.length > 0 ? "tool_calls" : event.finishReason,
          usage: usage(started.promptTokens, event.completionTokens, cachedTokens),
          tokens: leftover,
        };
        return;
      }
    }
  }

  return { events: events(), promptTokens: started.promptTokens };
}
