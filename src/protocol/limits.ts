/**
 * Context-window arithmetic of protocol v1, shared so the edge can reject a request before forwarding it.
 */
import { SAMPLING_DEFAULTS } from "./schemas.js";

export type MaxNewTokensResult =
  | { ok: true; maxNewTokens: number }
  | { ok: false; field: "prompt_token_ids" | "sampling.max_new_tokens"; message: string };

/**
 * The number of tokens a request may generate. An explicit `max_new_tokens` must fit with the prompt in the
 * context; an absent one defaults to min(256, room left), so a long prompt still gets an answer.
 */
export function resolveMaxNewTokens(
  requested: number | undefined,
  promptTokens: number,
  maxContext: number,
): MaxNewTokensResult {
  const room = maxContext - promptTokens;
  if (room < 1) {
    return {
      ok: false,
      field: "prompt_token_ids",
      message: `prompt_token_ids: the prompt has ${promptTokens} tokens; the model's context is ${maxContext}, which leaves no room for a new token`,
    };
  }
  if (requested === undefined) return { ok: true, maxNewTokens: Math.min(SAMPLING_DEFAULTS.max_new_tokens, room) };
  if (requested > room) {
    return {
      ok: false,
      field: "sampling.max_new_tokens",
      message: `sampling.max_new_tokens: ${promptTokens} prompt tokens + ${requested} new tokens exceed the model's context of ${maxContext} (at most ${room} new tokens fit)`,
    };
  }
  return { ok: true, maxNewTokens: requested };
}
