import { describe, expect, it } from "vitest";
import {
  SAMPLING_DEFAULTS,
  generateRequestSchema,
  resolveMaxNewTokens,
  tokenizeRequestSchema,
  validationErrorBody,
} from "../../src/protocol/index.js";

const minimal = { version: 1, request_id: "r1", prompt_token_ids: [1, 2] };

function errorOf(input: unknown) {
  const parsed = generateRequestSchema.safeParse(input);
  if (parsed.success) throw new Error(`expected a validation error for ${JSON.stringify(input)}`);
  return validationErrorBody(parsed.error).error;
}

describe("generateRequestSchema", () => {
  it("fills in our documented defaults, never a library's", () => {
    const r = generateRequestSchema.parse(minimal);
    expect(r.session_id).toBeNull();
    expect(r.deadline_ms).toBeNull();
    expect(r.sampling).toEqual({
      temperature: SAMPLING_DEFAULTS.temperature,
      top_p: 1,
      top_k: 0,
      repetition_penalty: 1,
      frequency_penalty: 0,
      presence_penalty: 0,
      seed: null,
      logprobs: false,
      top_logprobs: 0,
    });
    expect(SAMPLING_DEFAULTS.temperature).toBe(1);
  });

  it.each([
    [{ ...minimal, sampling: { top_p: 0 } }, "sampling.top_p"],
    [{ ...minimal, sampling: { top_p: 1.5 } }, "sampling.top_p"],
    [{ ...minimal, sampling: { temperature: 2.5 } }, "sampling.temperature"],
    [{ ...minimal, sampling: { top_k: -1 } }, "sampling.top_k"],
    [{ ...minimal, sampling: { top_k: 1.5 } }, "sampling.top_k"],
    [{ ...minimal, sampling: { repetition_penalty: 0 } }, "sampling.repetition_penalty"],
    [{ ...minimal, sampling: { frequency_penalty: 3 } }, "sampling.frequency_penalty"],
    [{ ...minimal, sampling: { presence_penalty: -3 } }, "sampling.presence_penalty"],
    [{ ...minimal, sampling: { max_new_tokens: 0 } }, "sampling.max_new_tokens"],
    [{ ...minimal, sampling: { seed: -1 } }, "sampling.seed"],
    [{ ...minimal, sampling: { top_logprobs: 21, logprobs: true } }, "sampling.top_logprobs"],
    [{ ...minimal, sampling: { top_logprobs: 2 } }, "sampling.top_logprobs"],
    [{ ...minimal, sampling: { stop_token_ids: [1, "x"] } }, "sampling.stop_token_ids.1"],
    [{ ...minimal, sampling: { topP: 0.5 } }, "sampling.topP"],
    [{ ...minimal, prompt_token_ids: [1, -5] }, "prompt_token_ids.1"],
    [{ ...minimal, prompt_token_ids: [] }, "prompt_token_ids"],
    [{ ...minimal, prompt: "hi" }, "prompt"],
    [{ version: 1, request_id: "r1" }, "prompt_token_ids"],
    [{ ...minimal, version: 2 }, "version"],
    [{ ...minimal, request_id: "a/b" }, "request_id"],
    [{ ...minimal, deadline_ms: 0 }, "deadline_ms"],
    [{ ...minimal, extra: true }, "extra"],
  ])("rejects %j naming the field %s", (input, field) => {
    const err = errorOf(input);
    expect(err.code).toBe("invalid_request");
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
  });

  it("accepts a text prompt instead of token ids", () => {
    expect(generateRequestSchema.parse({ version: 1, request_id: "r", prompt: "hello" }).prompt).toBe("hello");
  });
});

describe("tokenizeRequestSchema", () => {
  it("defaults bos to false and rejects unknown fields", () => {
    expect(tokenizeRequestSchema.parse({ text: "x" })).toEqual({ text: "x", bos: false });
    expect(tokenizeRequestSchema.safeParse({ text: "x", eos: true }).success).toBe(false);
  });
});

describe("resolveMaxNewTokens", () => {
  it("defaults to min(256, room) and rejects what does not fit, naming the field", () => {
    expect(resolveMaxNewTokens(undefined, 10, 2048)).toEqual({ ok: true, maxNewTokens: 256 });
    expect(resolveMaxNewTokens(undefined, 2000, 2048)).toEqual({ ok: true, maxNewTokens: 48 });
    expect(resolveMaxNewTokens(48, 2000, 2048)).toEqual({ ok: true, maxNewTokens: 48 });
    expect(resolveMaxNewTokens(49, 2000, 2048)).toMatchObject({ ok: false, field: "sampling.max_new_tokens" });
    expect(resolveMaxNewTokens(undefined, 2048, 2048)).toMatchObject({ ok: false, field: "prompt_token_ids" });
  });
});
