/**
 * Chat and completions end to end in workerd against real GPU worker processes (tiny random model): the
 * answers are compared with the same generation asked of a GPU worker directly (seeded sampling is
 * deterministic), usage with the tokenizer's counts, and tool-call output with Meta's golden parse vectors
 * read back through the official openai client's stream accumulator.
 */
/// <reference types="@cloudflare/workers-types" />
import OpenAI from "openai";
import { ChatCompletionStream } from "openai/lib/ChatCompletionStream";
import { Stream } from "openai/streaming";
import { describe, expect, it } from "vitest";
import { ChatFormat, type Message } from "../../src/llama/chat-format.js";
import { llama31SystemMessages } from "../../src/llama/prompts.js";
import { parseAssistantOutput } from "../../src/edge/chat/prompt.js";
import type { ChatEvent } from "../../src/edge/chat/run.js";
import { chatCompletionChunks, chatCompletionResponse } from "../../src/edge/openai/chat-completions.js";
import { usage } from "../../src/edge/openai/format.js";
import { pumpSse, SseStream } from "../../src/edge/sse.js";
import { bundledTokenizer } from "../../src/edge/worker-services.js";
import { API_KEY, edge, generateDirect, golden, post, readNdjson, readSse, sharedWorkers } from "./helpers.js";

const MODEL = "meta-llama/Llama-3.1-8B-Instruct";
const tokenizer = bundledTokenizer();
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Name a colour." },
];

async function tokenize(body: Record<string, unknown>): Promise<number[]> {
  const res = await post("/v1/tokenize", body);
  return ((await res.json()) as { tokens: number[] }).tokens;
}

/** What the GPU worker generates for these ids and settings when asked directly (the reference). */
async function direct(promptIds: number[], maxTokens: number, seed: number, extra: Record<string, unknown> = {}) {
  const result = await generateDirect(sharedWorkers()[0]!, {
    version: 1,
    request_id: `direct-${crypto.randomUUID()}`,
    prompt_token_ids: promptIds,
    sampling: { max_new_tokens: maxTokens, temperature: 0.6, top_p: 0.9, seed, ...extra },
  });
  const done = result.events.at(-1) as { type: "done"; stop_token_id?: number; finish_reason: string };
  return {
    ...result,
    text: tokenizer.decode(result.tokens.filter((id) => id < 128000)),
    completionTokens: result.tokens.length + (done.stop_token_id === undefined ? 0 : 1),
    finish: done.finish_reason,
  };
}

interface ChatBody {
  id: string;
  object: string;
  choices: { index: number; message: { role: string; content: string | null; tool_calls?: unknown[] }; finish_reason: string; logprobs: { content: { token: string; logprob: number; top_logprobs: unknown[] }[] } | null }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

describe("chat completions", () => {
  it("answers with the GPU worker's tokens and the tokenizer's counts", async () => {
    const res = await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 12, seed: 11 });
    const body = (await res.json()) as ChatBody;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.object).toBe("chat.completion");
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    const ids = await tokenize({ messages });
    const reference = await direct(ids, 12, 11);
    expect(body.choices[0]!.message.role).toBe("assistant");
    expect(body.choices[0]!.message.content).toBe(reference.text);
    expect(body.choices[0]!.finish_reason).toBe(reference.finish === "length" ? "length" : "stop");
    expect(body.usage.prompt_tokens).toBe(ids.length);
    expect(body.usage.completion_tokens).toBe(reference.completionTokens);
    expect(body.usage.total_tokens).toBe(ids.length + reference.completionTokens);
  });

  it("streams the same answer: role chunk, deltas, finish, usage chunk, [DONE]", async () => {
    const res = await post("/v1/chat/completions", {
      model: MODEL,
      messages,
      max_tokens: 12,
      seed: 11,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const { data } = await readSse(res);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1) as { id: string; object: string; choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[]; usage: unknown }[];
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    const finishes = chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f !== null);
    expect(finishes).toHaveLength(1);
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("");
    const ids = await tokenize({ messages });
    const reference = await direct(ids, 12, 11);
    expect(text).toBe(reference.text);
    expect(usageChunk.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: reference.completionTokens });
  });

  it("reports a logprob for every generated token, with top alternatives", async () => {
    const res = await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 6, seed: 3, logprobs: true, top_logprobs: 2 });
    const body = (await res.json()) as ChatBody;
    const entries = body.choices[0]!.logprobs!.content;
    const generated = body.usage.completion_tokens - (body.choices[0]!.finish_reason === "stop" ? 1 : 0);
    expect(entries).toHaveLength(generated);
    for (const e of entries) {
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top_logprobs).toHaveLength(2);
    }
  });

  it("ends at a stop string, streaming or not", async () => {
    const base = (await (await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 24, temperature: 0 })).json()) as ChatBody;
    const full = base.choices[0]!.message.content!;
    expect(full.length).toBeGreaterThan(10);
    // A stop string taken from the middle of the greedy answer: the answer must end right before it.
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const expected = full.slice(0, full.indexOf(stop));
    const cut = (await (await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 24, temperature: 0, stop: [stop] })).json()) as ChatBody;
    expect(cut.choices[0]!.message.content).toBe(expected);
    expect(cut.choices[0]!.finish_reason).toBe("stop");
    const streamed = await readSse(await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 24, temperature: 0, stop, stream: true }));
    const text = (streamed.data.slice(0, -1) as { choices: { delta: { content?: string } }[] }[]).map((c) => c.choices[0]!.delta.content ?? "").join("");
    expect(text).toBe(expected);
  });

  it("round-trips a tool call: tool prompt, assistant tool_calls, tool result, then an answer", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Current weather in a city",
          parameters: { type: "object", properties: { city: { type: "string", description: "City name" } }, required: ["city"] },
        },
      },
    ];
    const conversation = [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: "18 C, sunny" },
    ];
    const res = await post("/v1/chat/completions", { model: MODEL, messages: conversation, tools, max_tokens: 8, seed: 5 });
    const body = (await res.json()) as ChatBody;
    expect(res.status, JSON.stringify(body)).toBe(200);

    // The prompt the edge sent is llama-models' tool prompt followed by the conversation, built here from the
    // text core's generators (tested against Meta's golden vectors in test/llama).
    const expectedMessages: Message[] = [
      ...llama31SystemMessages({
        customTools: [{ toolName: "get_weather", description: "Current weather in a city", parameters: { city: { paramType: "string", description: "City name", required: true } } }],
        instruction: "Answer briefly.",
      }),
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: "", toolCalls: [{ callId: "call_1", toolName: "get_weather", arguments: { city: "Paris" } }], stopReason: "end_of_message" },
      { role: "tool", content: "18 C, sunny" },
    ];
    const expectedIds = new ChatFormat(tokenizer).encodeDialogPrompt(expectedMessages, "json");
    const ids = await tokenize({ messages: conversation, tools });
    expect(ids).toEqual(expectedIds);
    expect(body.usage.prompt_tokens).toBe(expectedIds.length);
    const text = tokenizer.decode(ids);
    expect(text).toContain("Environment: ipython");
    expect(text).toContain('{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>');
    expect(text).toContain("<|start_header_id|>ipython<|end_header_id|>\n\n18 C, sunny<|eot_id|>");
    const reference = await direct(expectedIds, 8, 5);
    // A random model does not call tools; whatever it says comes back as content or as a parsed call.
    if (body.choices[0]!.finish_reason !== "tool_calls") expect(body.choices[0]!.message.content).toBe(reference.text);
  });

  it("offers no tools with tool_choice none, and only the named one with a named choice", async () => {
    const tools = ["a_tool", "b_tool"].map((name) => ({ type: "function", function: { name, description: `does ${name}`, parameters: { type: "object", properties: {} } } }));
    const user = [{ role: "user", content: "hi" }];
    expect(await tokenize({ messages: user, tools, tool_choice: "none" })).toEqual(await tokenize({ messages: user }));
    const named = tokenizer.decode(await tokenize({ messages: user, tools, tool_choice: { type: "function", function: { name: "b_tool" } } }));
    expect(named).toContain('"name": "b_tool"');
    expect(named).not.toContain('"name": "a_tool"');
    expect(named).toContain("You must call the function 'b_tool'.");
  });
});

describe("tool calls in the model's output (Meta's golden parse vectors)", () => {
  const vectors = golden();
  type Vector = { content_in: string; stop_reason_in: string; result?: { content: string; tool_calls: { tool_name: string; arguments: unknown }[] }; exception?: string };

  it.skipIf(vectors === null)("become OpenAI tool_calls exactly when llama-models parses a call", () => {
    const cases = vectors!.decode_assistant_message_from_content as Vector[];
    let calls = 0;
    for (const c of cases) {
      const ids = tokenizer.encode(c.content_in, { bos: false, eos: false, allowedSpecial: "all" });
      const names = new Set((c.result?.tool_calls ?? []).map((t) => t.tool_name));
      const parsed = parseAssistantOutput(tokenizer, ids, null, { toolNames: names });
      if (c.result === undefined || c.result.tool_calls.length === 0) {
        expect(parsed.toolCalls, c.content_in).toEqual([]);
        continue;
      }
      calls++;
      const expected = c.result.tool_calls[0]!;
      expect(parsed.toolCalls).toHaveLength(1);
      expect(parsed.toolCalls[0]!.function.name).toBe(expected.tool_name);
      expect(parsed.toolCalls[0]!.id).toMatch(/^call_[0-9a-f]{32}$/);
      // OpenAI arguments are JSON text; a reference call with string arguments arrives as a JSON string.
      expect(JSON.parse(parsed.toolCalls[0]!.function.arguments), c.content_in).toEqual(expected.arguments);
      // Calls of tools that were not offered stay content.
      expect(parseAssistantOutput(tokenizer, ids, null, { toolNames: new Set(["something_else"]) }).toolCalls).toEqual([]);
    }
    expect(calls).toBeGreaterThan(10);
  });

  it.skipIf(vectors === null)("stream as tool-call deltas that the openai client assembles", async () => {
    const c = (vectors!.decode_assistant_message_from_content as Vector[]).find(
      (v) => v.result?.tool_calls.length === 1 && typeof v.result.tool_calls[0]!.arguments === "object" && Object.keys(v.result.tool_calls[0]!.arguments as object).length > 0,
    )!;
    const ids = tokenizer.encode(c.content_in, { bos: false, eos: false, allowedSpecial: "all" });
    const { toolCalls } = parseAssistantOutput(tokenizer, ids, null, { toolNames: new Set([c.result!.tool_calls[0]!.tool_name]) });
    const events = async function* (): AsyncGenerator<ChatEvent> {
      yield { type: "tool_calls", calls: toolCalls };
      yield { type: "finish", finishReason: "tool_calls", usage: usage(10, ids.length), tokens: [] };
    };
    const meta = { id: "chatcmpl-x", created: 1, model: MODEL, tokenizer, logprobs: false, includeUsage: true };
    const sse = new SseStream(1000);
    void pumpSse(sse, chatCompletionChunks(events(), meta), {}, () => undefined);
    const controller = new AbortController();
    const sdkStream = ChatCompletionStream.fromReadableStream(Stream.fromSSEResponse(sse.response(), controller).toReadableStream());
    const final = await sdkStream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    const call = final.choices[0]!.message.tool_calls![0]! as { id: string; function: { name: string; arguments: string } };
    expect(call.id).toBe(toolCalls[0]!.id);
    expect(call.function.name).toBe(c.result!.tool_calls[0]!.tool_name);
    expect(JSON.parse(call.function.arguments)).toEqual(c.result!.tool_calls[0]!.arguments);
    const whole = (await chatCompletionResponse(events(), meta)) as unknown as ChatBody;
    expect(whole.choices[0]!.message.content).toBeNull();
    expect(whole.choices[0]!.message.tool_calls).toEqual(toolCalls);
  });
});

describe("queueing", () => {
  it("sends SSE keep-alive comments while the request waits in the GPU queue", async () => {
    const env = { GPU_WORKERS: sharedWorkers()[0]! };
    // A long generation occupies the worker (it runs one at a time), so the next request queues behind it.
    const blocker = post("/v1/completions", { model: MODEL, prompt: "Once upon a time", max_tokens: 120, temperature: 0 }, { env });
    await new Promise((r) => setTimeout(r, 150));
    const res = await post("/v1/chat/completions", { model: MODEL, messages, max_tokens: 2, stream: true }, { env });
    const sse = await readSse(res);
    expect((await blocker).status).toBe(200);
    expect(sse.data.at(-1)).toBe("[DONE]");
    // Comments arrived after the role chunk and before the first content: while the request was queued.
    const waiting = sse.comments.filter((c) => c.beforeData <= 1);
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting[0]!.text).toBe("keep-alive");
  });
});

describe("other API shapes", () => {
  it("serves /v1/completions from a raw prompt, streaming and not", async () => {
    const prompt = "The capital of France is";
    const res = await post("/v1/completions", { model: MODEL, prompt, max_tokens: 8, seed: 9, logprobs: 1 });
    const body = (await res.json()) as { object: string; choices: { text: string; logprobs: { tokens: string[]; token_logprobs: number[] } }[]; usage: { prompt_tokens: number; completion_tokens: number } };
    expect(body.object).toBe("text_completion");
    const ids = tokenizer.encode(prompt, { bos: true, eos: false });
    const reference = await direct(ids, 8, 9);
    expect(body.choices[0]!.text).toBe(reference.text);
    expect(body.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: reference.completionTokens });
    expect(body.choices[0]!.logprobs.token_logprobs).toHaveLength(reference.tokens.length);
    const streamed = await readSse(await post("/v1/completions", { model: MODEL, prompt, max_tokens: 8, seed: 9, stream: true }));
    const text = (streamed.data.slice(0, -1) as { choices: { text: string }[] }[]).map((c) => c.choices[0]!.text).join("");
    expect(text).toBe(reference.text);
  });

  it("serves Workers AI /ai/run with prompt, raw and streaming", async () => {
    const res = await post("/ai/run/@cf/meta/llama-3.1-8b-instruct", { prompt: "Say hi", max_tokens: 5, seed: 4 });
    const body = (await res.json()) as { success: boolean; result: { response: string; usage: { prompt_tokens: number } } };
    expect(body.success).toBe(true);
    const chatIds = await tokenize({ messages: [{ role: "user", content: "Say hi" }] });
    expect(body.result.usage.prompt_tokens).toBe(chatIds.length);
    expect(body.result.response).toBe((await direct(chatIds, 5, 4)).text);

    const raw = (await (await post("/ai/run/@cf/meta/llama-3.1-8b-instruct", { prompt: "Say hi", raw: true, max_tokens: 5, seed: 4 })).json()) as typeof body;
    expect(raw.result.usage.prompt_tokens).toBe(tokenizer.encode("Say hi", { bos: true, eos: false }).length);

    const stream = await readSse(await post("/ai/run/@cf/meta/llama-3.1-8b-instruct", { prompt: "Say hi", max_tokens: 5, seed: 4, stream: true }));
    expect(stream.data.at(-1)).toBe("[DONE]");
    const frames = stream.data.slice(0, -1) as { response: string; usage?: unknown }[];
    expect(frames.map((f) => f.response).join("")).toBe(body.result.response);
    expect(frames.at(-1)!.usage).toMatchObject({ prompt_tokens: chatIds.length });
  });

  it("serves the stateless chat function as NDJSON", async () => {
    const res = await post("/chat", { messages, max_tokens: 6, seed: 2 });
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const events = await readNdjson(res);
    const done = events.at(-1)!;
    expect(done.type).toBe("done");
    const ids = await tokenize({ messages });
    expect(events.filter((e) => e.type === "delta").map((e) => e.content).join("")).toBe((await direct(ids, 6, 2)).text);
    expect((done.usage as { prompt_tokens: number }).prompt_tokens).toBe(ids.length);
  });
});

describe("the official openai client", () => {
  const client = new OpenAI({
    apiKey: API_KEY,
    baseURL: "http://edge.test/v1",
    maxRetries: 0,
    fetch: (url: string | URL | Request, init?: RequestInit) => {
      const u = new URL(url instanceof Request ? url.url : String(url));
      return edge(u.pathname + u.search, init);
    },
  });

  it("gets the same answer streaming and not", async () => {
    const whole = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Count to three." }], max_tokens: 10, seed: 21 });
    expect(whole.choices[0]!.message.content?.length).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Count to three." }],
      max_tokens: 10,
      seed: 21,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let total = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) total = chunk.usage.total_tokens;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(total).toBe(whole.usage!.total_tokens);
  });

  it("raises the SDK's typed errors", async () => {
    await expect(client.chat.completions.create({ model: MODEL, messages: [], max_tokens: 2 })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const anonymous = new OpenAI({ apiKey: "wrong", baseURL: "http://edge.test/v1", maxRetries: 0, fetch: (u: string | URL | Request, i?: RequestInit) => edge(new URL(String(u)).pathname, i) });
    await expect(anonymous.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain(MODEL);
  });
});
