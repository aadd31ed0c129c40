/** Small pieces of the OpenAI response format shared by chat completions and completions. */
import type { Tokenizer } from "../../llama/tokenizer.js";
import type { TokenEvent } from "../../protocol/index.js";

/** The error event sent when the gateway itself fails after a stream has begun. */
export const OPENAI_STREAM_FAILURE = {
  error: { message: "internal error in the gateway", type: "server_error", param: null, code: "internal_error" },
};

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: prompt tokens whose KV cache the GPU worker reused from the session's previous turn. */
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens = 0): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

export function responseId(prefix: "chatcmpl" | "cmpl", requestId: string): string {
  return `${prefix}-${requestId.replace(/^req_/, "")}`;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

function tokenText(tokenizer: Tokenizer, id: number): { token: string; bytes: number[] } {
  const bytes = tokenizer.tokenBytes(id);
  return { token: new TextDecoder().decode(bytes), bytes: [...bytes] };
}

/** Chat-format `logprobs.content` entries for tokens that carry a logprob. */
export function chatLogprobs(tokenizer: Tokenizer, tokens: readonly TokenEvent[]): ChatTokenLogprob[] {
  const out: ChatTokenLogprob[] = [];
  for (const t of tokens) {
    if (t.logprob === undefined) continue;
    out.push({
      ...tokenText(tokenizer, t.id),
      logprob: t.logprob,
      top_logprobs: (t.top_logprobs ?? []).map((alt) => ({ ...tokenText(tokenizer, alt.id), logprob: alt.logprob })),
    });
  }
  return out;
}

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[] | null;
  text_offset: number[];
}

/** Completions-format (legacy) logprobs; `offset` is the length of the text before these tokens. */
export function legacyLogprobs(tokenizer: Tokenizer, tokens: readonly TokenEvent[], offset: number, withTop: boolean): LegacyLogprobs {
  const result: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: withTop ? [] : null, text_offset: [] };
  let at = offset;
  for (const t of tokens) {
    if (t.logprob === undefined) continue;
    const { token } = tokenText(tokenizer, t.id);
    result.tokens.push(token);
    result.token_logprobs.push(t.logprob);
    result.text_offset.push(at);
    at += token.length;
    if (result.top_logprobs) {
      const top: Record<string, number> = {};
      for (const alt of t.top_logprobs ?? []) top[tokenText(tokenizer, alt.id).token] = alt.logprob;
      result.top_logprobs.push(top);
    }
  }
  return result;
}
