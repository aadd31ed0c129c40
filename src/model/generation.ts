/**
 * Batch generation with the semantics of the Llama 3 repository's `Llama.generate`
 * (`llama/generation.py`):
 *
 * - `total_len = min(max_seq_len, max_gen_len + max_prompt_len)`; decoding starts at the shortest
 *   prompt's length and positions still inside a longer prompt keep the prompt token (teacher forcing);
 * - each step runs the model on `tokens[prev_pos:cur_pos]` at `prev_pos` with the KV cache;
 * - temperature 0 is greedy, otherwise temperature + top-p sampling (`sampleToken`) from one seeded
 *   generator, rows in order;
 * - a row is done when a *generated* token is a stop token; the loop ends when every row is done;
 * - per row the output is `tokens[start : len(prompt) + max_gen_len]` (`start` 0 with echo, else the
 *   prompt length), cut before the first stop token; logprobs are `-cross_entropy` of the raw logits,
 *   0 for position 0 (nothing predicts it).
 *
 * The reference runs the batch as one tensor; here each row has its own KV cache, and rows are
 * sampled in order from one generator, so a seed fixes the whole batch's output.
 */
import { HF_EOS_TOKEN_IDS } from "./config.js";
import type { KVCache, ReferenceModel } from "./reference.js";
import { Rng } from "./rng.js";
import { checkSamplingParams, logSoftmax, REFERENCE_SAMPLING, sampleToken, type SamplingParams } from "./sampling.js";

export interface GenerateOptions {
  maxGenLen: number;
  /** Default 0.6 (reference); 0 = greedy. */
  temperature?: number;
  /** Default 0.9 (reference). */
  topP?: number;
  /** Seed of the sampling generator (default 1, the reference `Llama.build` seed). */
  seed?: number;
  logprobs?: boolean;
  echo?: boolean;
  /** Default: Llama 3.1 `<|end_of_text|>`, `<|eom_id|>`, `<|eot_id|>`. */
  stopTokens?: readonly number[];
  /** Default: the model's `max_seq_len`. */
  maxSeqLen?: number;
}

export interface GenerationResult {
  tokens: number[];
  logprobs?: number[];
  /** Whether the output was cut at a stop token. */
  stopped: boolean;
}

export function generate(model: ReferenceModel, prompts: number[][], opts: GenerateOptions): GenerationResult[] {
  const maxSeqLen = opts.maxSeqLen ?? model.args.max_seq_len;
  const stopTokens = new Set(opts.stopTokens ?? HF_EOS_TOKEN_IDS);
  const sampling: SamplingParams = {
    ...REFERENCE_SAMPLING,
    temperature: opts.temperature ?? REFERENCE_SAMPLING.temperature,
    topP: opts.topP ?? REFERENCE_SAMPLING.topP,
  };
  if (!(Number.isSafeInteger(opts.maxGenLen) && opts.maxGenLen >= 0))
    throw new RangeError(`maxGenLen: expected an integer >= 0, got ${opts.maxGenLen}`);
  if (!(Number.isSafeInteger(maxSeqLen) && maxSeqLen > 0)) throw new RangeError(`maxSeqLen: expected a positive integer, got ${maxSeqLen}`);
  if (prompts.length === 0) throw new RangeError("prompts: expected at least one prompt");
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`prompts[${i}]: empty prompt`);
    if (p.length > maxSeqLen) throw new RangeError(`prompts[${i}]: ${p.length} tokens exceed maxSeqLen ${maxSeqLen}`);
  });
  checkSamplingParams(sampling);
  const rng = new Rng(opts.seed ?? 1);
  const wantLogprobs = opts.logprobs ?? false;

  const minPromptLen = Math.min(...prompts.map((p) => p.length));
  const maxPromptLen = Math.max(...prompts.map((p) => p.length));
  const totalLen = Math.min(maxSeqLen, opts.maxGenLen + maxPromptLen);
  // Rows shorter than totalLen are padded (the reference pads with -1); padding is never read.
  const tokens = prompts.map((p) => [...p]);
  const tokenLogprobs = prompts.map(() => new Array<number>(totalLen).fill(0));
  const caches: KVCache[] = prompts.map(() => model.newCache(totalLen));
  const isPrompt = (row: number, pos: number) => pos < prompts[row]!.length;

  // Log-probability of tokens[row][from+1 … to] under logits for positions from … to-1.
  const recordLogprobs = (row: number, logits: Float32Array, from: number, to: number) => {
    const V = model.args.vocab_size;
    for (let pos = from; pos < to; pos++) {
      const lp = logSoftmax(logits.subarray((pos - from) * V, (pos - from + 1) * V));
      tokenLogprobs[row]![pos + 1] = lp[tokens[row]![pos + 1]!]!;
    }
  };

  if (wantLogprobs && minPromptLen === totalLen) {
    // Nothing to generate: the reference still scores the prompts. (It compares the logits at
    // position i with token i here, unlike its decoding loop; we score token i+1 as the loop does.)
    prompts.forEach((_, row) => {
      const logits = model.forward(tokens[row]!.slice(0, totalLen), 0, caches[row]!, { allLogits: true });
      recordLogprobs(row, logits, 0, totalLen - 1);
    });
  }

  const done = prompts.map(() => false);
  let prevPos = 0;
  for (let curPos = minPromptLen; curPos < totalLen; curPos++) {
    for (let row = 0; row < prompts.length; row++) {
      const logits = model.forward(tokens[row]!.slice(prevPos, curPos), prevPos, caches[row]!, { allLogits: wantLogprobs });
      const V = model.args.vocab_size;
      const last = wantLogprobs ? logits.subarray(logits.length - V) : logits;
      const sampled = sampleToken(last, sampling, rng);
      const next = isPrompt(row, curPos) ? tokens[row]![curPos]! : sampled;
      tokens[row]![curPos] = next;
      if (wantLogprobs) recordLogprobs(row, logits, prevPos, curPos);
      if (!isPrompt(row, curPos) && stopTokens.has(next)) done[row] = true;
    }
    prevPos = curPos;
    if (done.every(Boolean)) break;
  }

  return prompts.map((prompt, row) => {
    const start = opts.echo ? 0 : prompt.length;
    const end = prompt.length + opts.maxGenLen;
    let out = tokens[row]!.slice(start, end);
    let lps = wantLogprobs ? tokenLogprobs[row]!.slice(start, Math.min(end, tokens[row]!.length)) : undefined;
    const stopAt = out.findIndex((t) => stopTokens.has(t));
    if (stopAt >= 0) {
      out = out.slice(0, stopAt);
      lps = lps?.slice(0, stopAt);
    }
    return lps ? { tokens: out, logprobs: lps, stopped: stopAt >= 0 } : { tokens: out, stopped: stopAt >= 0 };
  });
}
