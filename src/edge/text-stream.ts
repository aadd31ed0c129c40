/**
 * Generated token ids → text, incrementally: UTF-8 characters split across tokens are held until complete
 * (the text core's stream decoder), stop strings end the generation (and cancel it on the GPU), and text that
 * could be the beginning of a stop string is held back until it is known not to be. Every API shape
 * (OpenAI chat and completions, Workers AI, the chat function) formats these events; none decodes by itself.
 */
import { isSpecialTokenId } from "../llama/special-tokens.js";
import type { Tokenizer } from "../llama/tokenizer.js";
import type { StartEvent, TokenEvent } from "../protocol/index.js";
import type { Generation } from "./generation.js";

export interface TextStreamOptions {
  /** Stop strings: the output ends before the first occurrence of any of them. */
  stop: readonly string[];
  /** Leave special tokens (ids ≥ 128000) out of the text, as vLLM's `skip_special_tokens` does. */
  skipSpecialTokens: boolean;
}

export type FinishReason = "stop" | "length";

export type TextEvent =
  | { type: "start"; start: StartEvent }
  | { type: "waiting" }
  /** `tokens`: the tokens received since the previous delta (their text is in this delta or held back). */
  | { type: "delta"; text: string; tokens: TokenEvent[] }
  | {
      type: "end";
      finishReason: FinishReason;
      /** Every generated id (the stop token excluded). */
      ids: number[];
      /** The stop token the model sampled, if it stopped on one. */
      stopTokenId: number | null;
      /** The stop string that ended the output, if any. */
      stopString: string | null;
      /** Generated tokens, the sampled stop token included (the GPU worker counts the same way). */
      completionTokens: number;
      /** Tokens not yet reported by a delta. */
      tokens: TokenEvent[];
    }
  | { type: "error"; message: string; code: string };

/** Length of the longest suffix of `text` that is a proper prefix of one of `stops`. */
export function stopPrefixHoldback(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

/** The earliest stop-string match that ends after `from`. */
function findStop(text: string, from: number, stops: readonly string[]): { index: number; stop: string } | null {
  let best: { index: number; stop: string } | null = null;
  for (const stop of stops) {
    const index = text.indexOf(stop, Math.max(0, from - stop.length + 1));
    if (index !== -1 && (best === null || index < best.index)) best = { index, stop };
  }
  return best;
}

export async function* textStream(
  generation: Generation,
  tokenizer: Tokenizer,
  options: TextStreamOptions,
): AsyncGenerator<TextEvent> {
  const stops = options.stop.filter((s) => s !== "");
  const decoder = tokenizer.createStreamDecoder();
  const ids: number[] = [];
  let text = "";
  let emitted = 0;
  let pending: TokenEvent[] = [];

  const takePending = (): TokenEvent[] => {
    const out = pending;
    pending = [];
    return out;
  };

  for await (const event of generation.events()) {
    if (event.type === "start") {
      yield { type: "start", start: event.start };
    } else if (event.type === "waiting") {
      yield { type: "waiting" };
    } else if (event.type === "error") {
      yield { type: "error", message: event.message, code: event.code };
      return;
    } else if (event.type === "token") {
      const id = event.token.id;
      ids.push(id);
      pending.push(event.token);
      if (!(options.skipSpecialTokens && isSpecialTokenId(id))) text += decoder.push(id);
      if (stops.length > 0) {
        const hit = findStop(text, emitted, stops);
        if (hit !== null) {
          generation.cancel();
          if (hit.index > emitted) yield { type: "delta", text: text.slice(emitted, hit.index), tokens: takePending() };
          yield endEvent("stop", ids, null, hit.stop, takePending());
          return;
        }
      }
      const safeEnd = text.length - stopPrefixHoldback(text, stops);
      if (safeEnd > emitted) {
        yield { type: "delta", text: text.slice(emitted, safeEnd), tokens: takePending() };
        emitted = safeEnd;
      }
    } else {
      const done = event.done;
      if (done.finish_reason === "cancelled" || done.finish_reason === "error") {
        const why = done.error ? `${done.error.message}` : done.finish_reason;
        yield { type: "error", message: `generation ended early: ${why}`, code: done.error?.code ?? done.finish_reason };
        return;
      }
      text += decoder.flush();
      let end = text.length;
      let stopString: string | null = null;
      const hit = stops.length > 0 ? findStop(text, emitted, stops) : null;
      if (hit !== null) {
        end = hit.index;
        stopString = hit.stop;
      }
      if (end > emitted) yield { type: "delta", text: text.slice(emitted, end), tokens: takePending() };
      const finishReason: FinishReason = done.finish_reason === "length" && stopString === null ? "length" : "stop";
      yield endEvent(finishReason, ids, done.stop_token_id ?? null, stopString, takePending());
      return;
    }
  }
  yield { type: "error", message: "the generation ended without a result", code: "gpu_worker_failed" };
}

function endEvent(
  finishReason: FinishReason,
  ids: number[],
  stopTokenId: number | null,
  stopString: string | null,
  tokens: TokenEvent[],
): TextEvent {
  return {
    type: "end",
    finishReason,
    ids,
    stopTokenId,
    stopString,
    completionTokens: ids.length + (stopTokenId === null ? 0 : 1),
    tokens,
  };
}
