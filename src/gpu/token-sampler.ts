/**
 * The request's token choice from a row of logits, as both engines make it (transformers.js and the static-KV
 * decoder when a request needs more than its device-side argmax): penalties, our seeded sampler, and the
 * logprobs the request asked for, computed before the penalties as OpenAI reports them. One instance per
 * generation: it holds the request's random stream and the token history the penalties count.
 */
import { Rng } from "../model/rng.js";
import { applyPenalties, logSoftmax, sampleToken, topLogprobs, type SamplingParams } from "../model/sampling.js";
import type { GenerateRequest } from "../protocol/index.js";
import type { TokenLogprobs } from "./generation-stream.js";

export interface TokenChoice {
  token: number;
  logprobs?: TokenLogprobs;
}

export function samplingParams(s: GenerateRequest["sampling"]): SamplingParams {
  return {
    temperature: s.temperature,
    topP: s.top_p,
    topK: s.top_k,
    repetitionPenalty: s.repetition_penalty,
    frequencyPenalty: s.frequency_penalty,
    presencePenalty: s.presence_penalty,
  };
}

/** Whether the choice is the plain argmax of the logits (no sampling, penalties or logprobs). */
export function isPlainGreedy(s: GenerateRequest["sampling"]): boolean {
  return s.temperature === 0 && s.repetition_penalty === 1 && s.frequency_penalty === 0 && s.presence_penalty === 0 && !s.logprobs;
}

export class TokenSampler {
  private readonly params: SamplingParams;
  // Repetition penalty over prompt and output; frequency/presence over output only (OpenAI), as two passes
  // in vLLM's order.
  private readonly repetitionOnly: SamplingParams;
  private readonly openAiOnly: SamplingParams;
  private readonly penalised: boolean;
  private readonly rng: Rng;
  /** Prompt and chosen tokens: what the repetition penalty counts. */
  private readonly history: number[];

  constructor(
    private readonly sampling: GenerateRequest["sampling"],
    seed: number,
    promptIds: readonly number[],
  ) {
    this.params = samplingParams(sampling);
    this.repetitionOnly = { ...this.params, frequencyPenalty: 0, presencePenalty: 0 };
    this.openAiOnly = { ...this.params, repetitionPenalty: 1 };
    this.penalised = this.params.repetitionPenalty !== 1 || this.params.frequencyPenalty !== 0 || this.params.presencePenalty !== 0;
    this.rng = new Rng(seed);
    this.history = [...promptIds];
  }

  /**
   * The next token from `logits` (changed in place by the penalties) given the tokens generated so far.
   * The token joins the history the repetition penalty counts.
   */
  choose(logits: Float32Array, generated: readonly number[]): TokenChoice {
    const logprobs = this.sampling.logprobs ? logSoftmax(logits) : null;
    if (this.penalised) {
      applyPenalties(logits, this.history, this.repetitionOnly);
      applyPenalties(logits, generated, this.openAiOnly);
    }
    const token = sampleToken(logits, this.params, this.rng);
    this.history.push(token);
    if (!logprobs) return { token };
    const top = this.sampling.top_logprobs > 0 ? { top: topLogprobs(logprobs, this.sampling.top_logprobs) } : {};
    return { token, logprobs: { logprob: logprobs[token]!, ...top } };
  }
}
