/**
 * Next-token selection.
 *
 * The core is the Llama reference rule (`generation.py`, shared by the llama3 and llama-models
 * repositories): temperature 0 is argmax; otherwise `softmax(logits / T)`, then `sample_top_p`
 * (keep a token when the probability mass *before* it in descending order is ≤ p, so the top token
 * is always kept), renormalise, draw. Around it sit the controls an OpenAI-style server needs:
 * top-k (applied before top-p, as Hugging Face and vLLM do), the Hugging Face/CTRL repetition
 * penalty and OpenAI's frequency/presence penalties.
 */
import type { Rng } from "./rng.js";

export interface SamplingParams {
  /** 0 selects greedy decoding (argmax). */
  temperature: number;
  /** Nucleus mass in [0, 1]; 1 keeps every token. */
  topP: number;
  /** Keep only the k most likely tokens before top-p; 0 = off. */
  topK: number;
  /** Hugging Face/CTRL rule: positive logits divided by it, negative ones multiplied; 1 = off. */
  repetitionPenalty: number;
  /** OpenAI rule: subtract `count · frequencyPenalty` from each seen token's logit. */
  frequencyPenalty: number;
  /** OpenAI rule: subtract `presencePenalty` from each token seen at least once. */
  presencePenalty: number;
}

/** The reference defaults (temperature 0.6, top-p 0.9), no top-k, no penalties. */
export const REFERENCE_SAMPLING: Readonly<SamplingParams> = Object.freeze({
  temperature: 0.6,
  topP: 0.9,
  topK: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
});

export const GREEDY_SAMPLING: Readonly<SamplingParams> = Object.freeze({ ...REFERENCE_SAMPLING, temperature: 0, topP: 1 });

/** Throws a `RangeError` naming the first invalid field. */
export function checkSamplingParams(p: SamplingParams): void {
  const bad = (field: keyof SamplingParams, rule: string) => {
    throw new RangeError(`${field}: ${rule}, got ${String(p[field])}`);
  };
  if (!(Number.isFinite(p.temperature) && p.temperature >= 0)) bad("temperature", "expected a finite number >= 0");
  if (!(p.topP >= 0 && p.topP <= 1)) bad("topP", "expected a number in [0, 1]");
  if (!(Number.isSafeInteger(p.topK) && p.topK >= 0)) bad("topK", "expected an integer >= 0");
  if (!(Number.isFinite(p.repetitionPenalty) && p.repetitionPenalty > 0)) bad("repetitionPenalty", "expected a finite number > 0");
  if (!Number.isFinite(p.frequencyPenalty)) bad("frequencyPenalty", "expected a finite number");
  if (!Number.isFinite(p.presencePenalty)) bad("presencePenalty", "expected a finite number");
}

/**
 * Applies the repetition penalty, then the frequency and presence penalties (vLLM's order), in place.
 * The caller chooses which tokens count as "previous" (OpenAI counts generated tokens only; the HF
 * repetition penalty usually includes the prompt).
 */
export function applyPenalties(logits: Float32Array, previousTokens: readonly number[], p: SamplingParams): void {
  checkSamplingParams(p);
  const usesRepetition = p.repetitionPenalty !== 1;
  const usesOpenAi = p.frequencyPenalty !== 0 || p.presencePenalty !== 0;
  if (!usesRepetition && !usesOpenAi) return;
  const counts = new Map<number, number>();
  for (const [i, id] of previousTokens.entries()) {
    if (!(Number.isInteger(id) && id >= 0 && id < logits.length))
      throw new RangeError(`previousTokens[${i}]: token id ${id} is outside the vocabulary [0, ${logits.length})`);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const [id, count] of counts) {
    let l = logits[id]!;
    if (usesRepetition) l = l < 0 ? l * p.repetitionPenalty : l / p.repetitionPenalty;
    if (usesOpenAi) l -= count * p.frequencyPenalty + p.presencePenalty;
    logits[id] = l;
  }
}

/** Index of the first maximum (the reference's `torch.argmax`). */
export function argmax(logits: ArrayLike<number>): number {
  if (logits.length === 0) throw new RangeError("logits: empty");
  let best = 0;
  let bestValue = logits[0]!;
  for (let i = 1; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue) {
      best = i;
      bestValue = v;
    } else if (Number.isNaN(v)) throw new Error(`logits[${i}] is NaN`);
  }
  if (Number.isNaN(bestValue)) throw new Error("logits[0] is NaN");
  return best;
}

/** The distribution a draw is made from: kept token ids, most likely first, and their renormalised probabilities. */
export interface SamplingDistribution {
  ids: Int32Array;
  probs: Float64Array;
}

/**
 * Number of leading entries of a descending probability list that top-p keeps: entry i is kept when
 * the mass before it (relative to `total`) is ≤ p. Returns -1 if the list ends before the cut, i.e.
 * the list is only a prefix and more entries would be needed to decide.
 */
function topPKeepCount(sorted: ArrayLike<number>, count: number, p: number, total: number, complete: boolean): number {
  if (p >= 1) return complete ? count : -1; // p = 1 keeps everything; avoids rounding in the cumulative sum
  let before = 0;
  for (let i = 0; i < count; i++) {
    if (i > 0 && before / total > p) return i;
    before += sorted[i]!;
  }
  return complete ? count : -1;
}

/**
 * How many tokens of a descending probability list the reference top-p rule keeps (the list is
 * normalised by its sum first).
 */
export function topPKeptCount(sortedDescending: ArrayLike<number>, topP: number): number {
  if (!(topP >= 0 && topP <= 1)) throw new RangeError(`topP: expected a number in [0, 1], got ${topP}`);
  let total = 0;
  for (let i = 0; i < sortedDescending.length; i++) total += sortedDescending[i]!;
  return topPKeepCount(sortedDescending, sortedDescending.length, topP, total, true);
}

/**
 * The reference `sample_top_p` on a probability vector: sort descending, keep by top-p, renormalise,
 * draw, map back to the original index. Ties keep the lower index first.
 */
export function sampleTopP(probs: ArrayLike<number>, topP: number, rng: Rng): number {
  if (!(topP >= 0 && topP <= 1)) throw new RangeError(`topP: expected a number in [0, 1], got ${topP}`);
  const order = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  const sorted = Float64Array.from(order, (i) => probs[i]!);
  const total = sorted.reduce((s, x) => s + x, 0);
  const kept = topPKeepCount(sorted, sorted.length, topP, total, true);
  return order[drawIndex(sorted, kept, rng)]!;
}

/** Draws an index in [0, count) proportionally to `weights[0..count)` (the renormalisation is implicit). */
function drawIndex(weights: ArrayLike<number>, count: number, rng: Rng): number {
  let mass = 0;
  for (let i = 0; i < count; i++) mass += weights[i]!;
  const target = rng.nextFloat() * mass;
  let cumulative = 0;
  for (let i = 0; i < count; i++) {
    cumulative += weights[i]!;
    if (target < cumulative) return i;
  }
  // Rounding can leave target == cumulative at the very end; take the last token with mass.
  for (let i = count - 1; i > 0; i--) if (weights[i]! > 0) return i;
  return 0;
}

/** Relative probability floors tried in turn; each costs one pass over the vocabulary. */
const CANDIDATE_THRESHOLDS = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-13, 1e-16, 0];

/**
 * `softmax(logits / T)` restricted by top-k then top-p, renormalised. Requires `temperature > 0`.
 *
 * Sorting the whole 128k vocabulary with a comparator for every token would dominate sampling time.
 * Instead the candidate probabilities above a threshold (every token at or above it is a prefix of
 * the descending order) are sorted as plain numbers to find the cut value, and only the kept tokens
 * are ordered by id; the threshold is lowered until the cut falls inside the candidates. The result
 * equals a full sort by (probability descending, id ascending). Tokens with probability 0 are never
 * part of the result. `ids` are most likely first, except when nothing is truncated (top-p 1, no
 * top-k): then they are in vocabulary order.
 */
export function samplingDistribution(logits: Float32Array, p: SamplingParams): SamplingDistribution {
  checkSamplingParams(p);
  if (p.temperature === 0) throw new RangeError("temperature: samplingDistribution needs temperature > 0 (0 means argmax)");
  const vocab = logits.length;
  const k = p.topK > 0 ? Math.min(p.topK, vocab) : vocab;
  if (k < vocab) return topKDistribution(logits, k, p.temperature, p.topP);
  const max = logits[argmax(logits)]!; // argmax also rejects NaN
  if (max === -Infinity) throw new Error("logits: every token is -Infinity");

  const weights = new Float64Array(vocab);
  let total = 0;
  for (let i = 0; i < vocab; i++) total += weights[i] = Math.exp((logits[i]! - max) / p.temperature);
  if (k === vocab && p.topP >= 1) {
    // Nothing is truncated: plain softmax(logits / T), no sort needed.
    let count = 0;
    for (let i = 0; i < vocab; i++) if (weights[i]! > 0) count++;
    const ids = new Int32Array(count);
    const probs = new Float64Array(count);
    for (let i = 0, j = 0; i < vocab; i++) {
      if (weights[i]! > 0) {
        ids[j] = i;
        probs[j++] = weights[i]! / total;
      }
    }
    return { ids, probs };
  }

  const candidates = new Float64Array(vocab);
  for (const threshold of CANDIDATE_THRESHOLDS) {
    const floor = threshold * total;
    const everything = threshold === 0;
    let count = 0;
    let mass = 0;
    for (let i = 0; i < vocab; i++) {
      const w = weights[i]!;
      if (w > 0 && w >= floor) {
        candidates[count++] = w;
        mass += w;
      }
    }
    // Quick rejections before sorting: too few candidates for top-k, too little mass for top-p.
    if (!everything && (k < vocab ? count < k : mass <= p.topP * total)) continue;

    const sorted = candidates.subarray(0, count).sort().reverse();
    const inTopK = Math.min(k, count);
    // Top-p works on the top-k-renormalised distribution.
    let kMass = total;
    if (k < vocab) {
      kMass = 0;
      for (let j = 0; j < inTopK; j++) kMass += sorted[j]!;
    }
    const kept = topPKeepCount(sorted, inTopK, p.topP, kMass, k < vocab || everything);
    if (kept < 0) continue;

    // Kept: every token above the cut value, then the lowest ids among those equal to it.
    const cut = sorted[kept - 1]!;
    let ties = kept;
    for (let j = 0; j < kept; j++) if (sorted[j]! > cut) ties--;
    const ids: number[] = [];
    for (let i = 0; i < vocab; i++) {
      const w = weights[i]!;
      if (w > cut) ids.push(i);
      else if (w === cut && ties > 0) {
        ids.push(i);
        ties--;
      }
    }
    ids.sort((a, b) => weights[b]! - weights[a]! || a - b);
    let keptMass = 0;
    for (let j = 0; j < kept; j++) keptMass += sorted[j]!;
    const probs = new Float64Array(kept);
    for (let j = 0; j < kept; j++) probs[j] = weights[ids[j]!]! / keptMass;
    return { ids: Int32Array.from(ids), probs };
  }
  throw new Error("unreachable: the last threshold considers every token");
}

/** `a` ranks after `b` by (logit descending, id ascending). */
const ranksAfter = (logits: Float32Array, a: number, b: number) => logits[a]! < logits[b]! || (logits[a] === logits[b] && a > b);

/**
 * The top-k branch of `samplingDistribution`, without exponentiating the whole vocabulary (2 ms of the step on
 * a 128k vocabulary): the k best tokens by logit through a heap of size k, in one pass. Weights are monotone in
 * the logit, so this is the weight order except where exp rounds two distinct logits to the same weight: such
 * ties need logits within ~1e-15 relative of each other, so every token within a far wider margin of the k-th
 * logit joins the candidates, whose exact weights then decide the order (weight descending, id ascending), as a
 * full sort would. Top-p then cuts the renormalised top-k mass.
 */
function topKDistribution(logits: Float32Array, k: number, temperature: number, topP: number): SamplingDistribution {
  // Min-heap by (logit, id): heap[0] is the worst of the best k seen so far. The same pass finds the maximum
  // and rejects NaN, as argmax does on the other branch.
  const heap = new Int32Array(k);
  let size = 0;
  let max = -Infinity;
  for (let id = 0; id < logits.length; id++) {
    const v = logits[id]!;
    if (v > max) max = v;
    else if (Number.isNaN(v)) throw new Error(`logits[${id}] is NaN`);
    if (size < k) {
      heap[size] = id;
      for (let i = size++; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!ranksAfter(logits, heap[i]!, heap[parent]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (ranksAfter(logits, heap[0]!, id)) {
      heap[0] = id;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let worst = i;
        if (l < size && ranksAfter(logits, heap[l]!, heap[worst]!)) worst = l;
        if (r < size && ranksAfter(logits, heap[r]!, heap[worst]!)) worst = r;
        if (worst === i) break;
        [heap[i], heap[worst]] = [heap[worst]!, heap[i]!];
        i = worst;
      }
    }
  }
  if (max === -Infinity) throw new Error("logits: every token is -Infinity");
  const kth = logits[heap[0]!]!;
  const margin = 1e-9 * Math.max(temperature, max - kth);
  const inHeap = new Set(heap);
  const candidates = Array.from(heap);
  for (let id = 0; id < logits.length; id++) if (logits[id]! >= kth - margin && !inHeap.has(id)) candidates.push(id);
  const weightOf = new Map<number, number>();
  for (const id of candidates) weightOf.set(id, Math.exp((logits[id]! - max) / temperature));
  const ids = candidates
    .filter((id) => weightOf.get(id)! > 0) // probability 0 is never kept
    .sort((a, b) => weightOf.get(b)! - weightOf.get(a)! || a - b)
    .slice(0, k);
  const sorted = Float64Array.from(ids, (id) => weightOf.get(id)!);
  let kMass = 0;
  for (const w of sorted) kMass += w;
  const kept = topPKeepCount(sorted, ids.length, topP, kMass, true);
  let keptMass = 0;
  for (let j = 0; j < kept; j++) keptMass += sorted[j]!;
  const probs = new Float64Array(kept);
  for (let j = 0; j < kept; j++) probs[j] = sorted[j]! / keptMass;
  return { ids: Int32Array.from(ids.slice(0, kept)), probs };
}

/** Chooses the next token: argmax when `temperature == 0`, otherwise a draw from `samplingDistribution`. */
export function sampleToken(logits: Float32Array, p: SamplingParams, rng: Rng): number {
  checkSamplingParams(p);
  if (p.temperature === 0) return argmax(logits);
  const { ids, probs } = samplingDistribution(logits, p);
  return ids[drawIndex(probs, probs.length, rng)]!;
}

/** `log_softmax` with a float64 log-sum-exp. */
export function logSoftmax(logits: Float32Array): Float32Array {
  const max = logits[argmax(logits)]!; // argmax also rejects NaN
  if (max === -Infinity) throw new Error("logits: every token is -Infinity");
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logZ;
  return out;
}

/** The k largest entries, largest first; equal values keep the lower id first. */
export function topLogprobs(logprobs: Float32Array, k: number): Array<{ id: number; logprob: number }> {
  if (!(Number.isSafeInteger(k) && k >= 0)) throw new RangeError(`k: expected an integer >= 0, got ${k}`);
  const n = Math.min(k, logprobs.length);
  const best: Array<{ id: number; logprob: number }> = [];
  if (n === 0) return best;
  for (let i = 0; i < logprobs.length; i++) {
    const v = logprobs[i]!;
    if (Number.isNaN(v)) throw new Error(`logprobs[${i}] is NaN`);
    if (best.length === n && v <= best[n - 1]!.logprob) continue;
    if (best.length === n) best.pop();
    // Insert after every entry >= v, so an earlier (lower) id stays ahead of an equal later one.
    let at = best.length;
    while (at > 0 && best[at - 1]!.logprob < v) at--;
    best.splice(at, 0, { id: i, logprob: v });
  }
  return best;
}
