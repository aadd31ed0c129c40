/** Non-streaming answers: the text events of one generation gathered into one result. */
import { ApiError } from "../errors.js";
import type { TextEvent } from "../text-stream.js";
import type { TokenEvent } from "../../protocol/index.js";

export interface Collected {
  text: string;
  /** Prompt tokens served from the session's KV cache. */
  cachedTokens: number;
  tokens: TokenEvent[];
  end: Extract<TextEvent, { type: "end" }>;
}

/** Gathers the events; a failed generation becomes a 502 (nothing has been sent yet, so the status can say so). */
export async function collectText(events: AsyncIterable<TextEvent>): Promise<Collected> {
  let text = "";
  const tokens: TokenEvent[] = [];
  let cachedTokens = 0;
  for await (const event of events) {
    if (event.type === "start") {
      cachedTokens = event.start.cached_tokens;
    } else if (event.type === "delta") {
      text += event.text;
      tokens.push(...event.tokens);
    } else if (event.type === "end") {
      tokens.push(...event.tokens);
      return { text, cachedTokens, tokens, end: event };
    } else if (event.type === "error") {
      const status = event.code === "deadline_exceeded" ? 504 : 502;
      throw new ApiError(status, event.message, "server_error", event.code);
    }
  }
  throw new ApiError(502, "the generation ended without a result", "server_error", "gpu_worker_failed");
}
