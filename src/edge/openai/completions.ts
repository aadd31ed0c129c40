/**
 * `POST /v1/completions`: a raw prompt (no chat format), encoded with `<|begin_of_text|>` like the reference
 * `text_completion`, or given as token ids. Streams `text_completion` chunks when `stream` is true.
 */
import { z } from "zod";
import { readJsonBody } from "../body.js";
import { badRequest } from "../errors.js";
import { samplingFields } from "../chat/schema.js";
import { sessionIdFrom, startRun, type StartedRun } from "../run.js";
import type { EdgeHandler, RequestContext } from "../services.js";
import { pumpSse, SseStream } from "../sse.js";
import { textStream } from "../text-stream.js";
import { collectText } from "./collect.js";
import { legacyLogprobs, nowSeconds, OPENAI_STREAM_FAILURE, responseId, usage } from "./format.js";
import { checkModel } from "./models.js";

/** OpenAI's default for the legacy completions endpoint. */
const DEFAULT_MAX_TOKENS = 16;

const tokenIds = z.array(z.int().min(0)).min(1);

export const completionRequestSchema = z.object({
  model: z.string().min(1),
  prompt: z.union([
    z.string().min(1),
    z.array(z.string().min(1)).length(1, "only one prompt per request is supported"),
    tokenIds,
    z.array(tokenIds).length(1, "only one prompt per request is supported"),
  ]),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  ...samplingFields,
  logprobs: z.int().min(0).max(20).nullish(),
  echo: z
    .boolean()
    .nullish()
    .refine((e) => e !== true, "echo is not supported"),
  suffix: z
    .string()
    .nullish()
    .refine((s) => s == null || s === "", "suffix is not supported"),
  best_of: z
    .int()
    .nullish()
    .refine((b) => b == null || b === 1, "only best_of = 1 is supported"),
});

function promptIds(prompt: z.output<typeof completionRequestSchema>["prompt"], context: RequestContext): number[] {
  const tokenizer = context.services.tokenizer();
  const single = Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || Array.isArray(prompt[0])) ? prompt[0]! : prompt;
  if (typeof single === "string") return tokenizer.encode(single, { bos: true, eos: false });
  const ids = single as number[];
  ids.forEach((id, i) => {
    if (id >= tokenizer.vocabSize) throw badRequest(`prompt[${i}]: ${id} is not a token id (0..${tokenizer.vocabSize - 1})`, "prompt");
  });
  return ids;
}

export const completions: EdgeHandler = async (request, context) => {
  const { services } = context;
  const body = await readJsonBody(request, services.config.maxBodyBytes, completionRequestSchema);
  checkModel(body.model, services.config);
  const tokenizer = services.tokenizer();
  const ids = promptIds(body.prompt, context);
  const stops = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  const logprobs = body.logprobs != null;
  const run = {
    promptIds: ids,
    maxTokens: body.max_tokens ?? DEFAULT_MAX_TOKENS,
    promptParam: "prompt",
    maxTokensParam: "max_tokens",
    sampling: body,
    logprobs,
    topLogprobs: body.logprobs ?? 0,
    sessionId: sessionIdFrom(request),
  };
  const id = responseId("cmpl", context.requestId);
  const created = nowSeconds();
  const model = body.model;
  const textOptions = { stop: stops, skipSpecialTokens: true };

  if (body.stream !== true) {
    const started = await startRun(context, run, request.signal);
    const result = await collectText(textStream(started.generation, tokenizer, textOptions));
    return Response.json({
      id,
      object: "text_completion",
      created,
      model,
      choices: [
        {
          index: 0,
          text: result.text,
          logprobs: logprobs ? legacyLogprobs(tokenizer, result.tokens, 0, (body.logprobs ?? 0) > 0) : null,
          finish_reason: result.end.finishReason,
        },
      ],
      usage: usage(started.promptTokens, result.end.completionTokens, result.cachedTokens),
    });
  }

  const sse = new SseStream(services.config.sseKeepaliveMs);
  let started: StartedRun;
  try {
    started = await startRun(context, run, sse.signal);
  } catch (error) {
    sse.close();
    throw error;
  }
  const includeUsage = body.stream_options?.include_usage === true;
  const withTop = (body.logprobs ?? 0) > 0;
  const chunk = (text: string, finish: string | null, lp: unknown) => ({
    id,
    object: "text_completion",
    created,
    model,
    choices: [{ index: 0, text, logprobs: lp, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const promptTokens = started.promptTokens;
  async function* payloads(): AsyncGenerator<unknown> {
    let offset = 0;
    let cachedTokens = 0;
    for await (const event of textStream(started.generation, tokenizer, textOptions)) {
      if (event.type === "start") {
        cachedTokens = event.start.cached_tokens;
      } else if (event.type === "delta") {
        const lp = logprobs ? legacyLogprobs(tokenizer, event.tokens, offset, withTop) : null;
        offset += event.text.length;
        yield chunk(event.text, null, lp);
      } else if (event.type === "end") {
        const lp = logprobs && event.tokens.length > 0 ? legacyLogprobs(tokenizer, event.tokens, offset, withTop) : null;
        yield chunk("", event.finishReason, lp);
        if (includeUsage) yield { id, object: "text_completion", created, model, choices: [], usage: usage(promptTokens, event.completionTokens, cachedTokens) };
        yield "[DONE]";
        return;
      } else if (event.type === "error") {
        yield { error: { message: event.message, type: "server_error", param: null, code: event.code } };
        return;
      }
    }
  }
  void pumpSse(sse, payloads(), OPENAI_STREAM_FAILURE, (error) =>
    services.log({ event: "stream_failed", request_id: context.requestId, error: String(error) }),
  );
  return sse.response();
};
