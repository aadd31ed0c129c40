/**
 * `POST /v1/tokenize` and `POST /v1/detokenize` (vLLM's shapes). Tokenize takes either a raw `prompt`
 * (`add_special_tokens` adds `<|begin_of_text|>`) or chat `messages` (+ `tools`), formatted exactly as
 * `/v1/chat/completions` would send them, so `count` is what a chat request will be charged.
 */
import { z } from "zod";
import { readJsonBody } from "../body.js";
import { buildChatPrompt } from "../chat/prompt.js";
import { chatMessageSchema, toolChoiceSchema, toolSchema } from "../chat/schema.js";
import { badRequest } from "../errors.js";
import { route } from "../generation.js";
import type { EdgeHandler, EdgeServices } from "../services.js";
import { checkModel } from "./models.js";

export const tokenizeRequestSchema = z
  .object({
    model: z.string().min(1).optional(),
    prompt: z.string().optional(),
    add_special_tokens: z.boolean().default(true),
    messages: z.array(chatMessageSchema).min(1).optional(),
    tools: z.array(toolSchema).max(128).nullish(),
    tool_choice: toolChoiceSchema.nullish(),
    tool_prompt_format: z.enum(["json", "function_tag", "python_list"]).nullish(),
    add_generation_prompt: z.boolean().default(true),
  })
  .superRefine((r, ctx) => {
    if ((r.prompt === undefined) === (r.messages === undefined)) {
      ctx.addIssue({ code: "custom", path: [r.prompt === undefined ? "messages" : "prompt"], message: "send exactly one of prompt and messages" });
    }
  });

export const detokenizeRequestSchema = z.object({
  model: z.string().min(1).optional(),
  tokens: z.array(z.int().min(0)),
});

/** The context limit to report: the pool's when a worker answers, else the configured one. */
async function maxModelLen(services: EdgeServices): Promise<number> {
  try {
    return (await route(services)).maxContext;
  } catch {
    return services.config.maxContext;
  }
}

export const tokenize: EdgeHandler = async (request, { services }) => {
  const body = await readJsonBody(request, services.config.maxBodyBytes, tokenizeRequestSchema);
  if (body.model !== undefined) checkModel(body.model, services.config);
  const tokenizer = services.tokenizer();
  let tokens: number[];
  if (body.messages !== undefined) {
    const prompt = buildChatPrompt(tokenizer, {
      messages: body.messages,
      tools: body.tools,
      tool_choice: body.tool_choice,
      tool_prompt_format: body.tool_prompt_format,
    });
    tokens = body.add_generation_prompt ? prompt.ids : prompt.ids.slice(0, prompt.ids.length - prompt.generationPromptLength);
  } else {
    tokens = tokenizer.encode(body.prompt!, { bos: body.add_special_tokens, eos: false });
  }
  return Response.json({ count: tokens.length, max_model_len: await maxModelLen(services), tokens });
};

export const detokenize: EdgeHandler = async (request, { services }) => {
  const body = await readJsonBody(request, services.config.maxBodyBytes, detokenizeRequestSchema);
  if (body.model !== undefined) checkModel(body.model, services.config);
  const tokenizer = services.tokenizer();
  body.tokens.forEach((id, i) => {
    if (id >= tokenizer.vocabSize) throw badRequest(`tokens[${i}]: ${id} is not a token id (0..${tokenizer.vocabSize - 1})`, `tokens[${i}]`);
  });
  return Response.json({ prompt: tokenizer.decode(body.tokens) });
};
