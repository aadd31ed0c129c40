/**
 * The Llama 3 architecture as a plain TypeScript forward pass: the oracle that ONNX models are checked
 * against, and meant to be read as documentation (`models/llama3/model.py`, in Hugging Face layout).
 *
 *   x = embed_tokens[tokens]
 *   for each layer:   h = x + Attention(RMSNorm(x))        (GQA, RoPE, KV cache, causal)
 *                     x = h + FFN(RMSNorm(h))              (SwiGLU: down(silu(gate·h) ⊙ up·h))
 *   logits = lm_head(RMSNorm(x))                            (lm_head = embed_tokens when tied)
 *
 * Storage is float32 like the reference model; dot products, norms and softmax accumulate in float64
 * (JavaScript numbers), and every stored intermediate is rounded back to float32.
 */
import { ffnHiddenSize, headDim, type ModelArgs, type RopeScaling } from "./config.js";
import { formatShape, sameShape, type WeightSource } from "./tensor.js";
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerWeightNames, llamaWeightShapes } from "./weights.js";

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// Rotary position embeddings

/** `1 / theta^(2i/hd)` for i < hd/2, as float32 (`precompute_freqs_cis` / HF `inv_freq`). */
function baseInvFrequencies(a: ModelArgs): number[] {
  const hd = headDim(a);
  return Array.from({ length: hd / 2 }, (_, i) => f32(1 / a.rope_theta ** ((2 * i) / hd)));
}

/**
 * Meta's `apply_scaling` (llama-models `model.py`), written as there: per frequency, three branches
 * on the wavelength. Meta hard-codes (8, 1, 4, 8192); the constants are taken from `rope_scaling`.
 */
export function metaRopeFrequencies(a: ModelArgs): Float32Array {
  const freqs = baseInvFrequencies(a);
  if (!a.use_scaled_rope || !a.rope_scaling) return Float32Array.from(freqs);
  const { factor: scaleFactor, low_freq_factor: lowFreqFactor, high_freq_factor: highFreqFactor } = a.rope_scaling;
  const oldContextLen = a.rope_scaling.original_max_position_embeddings;
  const lowFreqWavelen = oldContextLen / lowFreqFactor;
  const highFreqWavelen = oldContextLen / highFreqFactor;
  return Float32Array.from(freqs, (freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) return freq;
    if (wavelen > lowFreqWavelen) return freq / scaleFactor;
    const smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return ((1 - smooth) * freq) / scaleFactor + smooth * freq;
  });
}

/**
 * Hugging Face `_compute_llama3_parameters` (`rope_type: "llama3"`), written as there: divide the low
 * frequencies, then overwrite the medium band with the smoothed value. Agrees with
 * `metaRopeFrequencies` (tested); this is the form the ONNX cos/sin caches are built from.
 */
export function ropeInvFrequencies(a: ModelArgs): Float32Array {
  const invFreq = baseInvFrequencies(a);
  if (!a.use_scaled_rope || !a.rope_scaling) return Float32Array.from(invFreq);
  const s: RopeScaling = a.rope_scaling;
  const lowFreqWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highFreqWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  return Float32Array.from(invFreq, (f) => {
    const wavelen = (2 * Math.PI) / f;
    const llama = wavelen > lowFreqWavelen ? f / s.factor : f;
    const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    const smoothed = ((1 - smooth) * llama) / s.factor + smooth * llama;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    return isMedium ? smoothed : llama;
  });
}

/**
 * cos/sin tables `[count, hd/2]` for positions `start … start+count-1`. The angle is the float32
 * product `position · inv_freq`, as in both reference implementations (this matters at long
 * positions, where float32 angles lose precision).
 */
export function ropeCosSin(a: ModelArgs, count: number, start = 0): { cos: Float32Array; sin: Float32Array } {
  return cosSinTable(ropeInvFrequencies(a), count, start);
}

function cosSinTable(invFreq: Float32Array, count: number, start: number): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(count * half);
  const sin = new Float32Array(count * half);
  for (let p = 0; p < count; p++)
    for (let i = 0; i < half; i++) {
      const angle = f32((start + p) * invFreq[i]!);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  return { cos, sin };
}

/**
 * Hugging Face rotate-half RoPE on one head vector `x[offset … offset+hd)`, in place:
 * the pair is `(x[i], x[i + hd/2])`, i.e. `x·cos + rotate_half(x)·sin`.
 */
export function applyRotaryHalf(x: Float32Array, offset: number, hd: number, cos: Float32Array, sin: Float32Array, row: number): void {
  const half = hd / 2;
  for (let i = 0; i < half; i++) {
    const c = cos[row * half + i]!;
    const s = sin[row * half + i]!;
    const x1 = x[offset + i]!;
    const x2 = x[offset + half + i]!;
    x[offset + i] = x1 * c - x2 * s;
    x[offset + half + i] = x2 * c + x1 * s;
  }
}

/**
 * Meta's RoPE on one head vector, in place: pairs `(x[2i], x[2i+1])` rotated as complex numbers.
 * Not used by the model (weights are in HF layout); it documents what `permuteMetaToHf` converts.
 */
export function applyRotaryInterleaved(x: Float32Array, offset: number, hd: number, cos: Float32Array, sin: Float32Array, row: number): void {
  const half = hd / 2;
  for (let i = 0; i < half; i++) {
    const c = cos[row * half + i]!;
    const s = sin[row * half + i]!;
    const re = x[offset + 2 * i]!;
    const im = x[offset + 2 * i + 1]!;
    x[offset + 2 * i] = re * c - im * s;
    x[offset + 2 * i + 1] = re * s + im * c;
  }
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/** RMSNorm of each row of `x` (`rows × dim`): `x · rsqrt(mean(x²) + eps) · weight`. */
export function rmsNorm(x: Float32Array, weight: Float32Array, eps: number, out = new Float32Array(x.length)): Float32Array {
  const dim = weight.length;
  for (let r = 0; r * dim < x.length; r++) {
    const o = r * dim;
    let sumSquares = 0;
    for (let i = 0; i < dim; i++) sumSquares += x[o + i]! * x[o + i]!;
    const inv = 1 / Math.sqrt(sumSquares / dim + eps);
    // Normalise, round to float32 (`.type_as(x)`), then scale by the weight.
    for (let i = 0; i < dim; i++) out[o + i] = f32(x[o + i]! * inv) * weight[i]!;
  }
  return out;
}

/** `y = x · Wᵀ` for `x: [rows, in]`, `W: [out, in]` (the HF/PyTorch `nn.Linear` layout), no bias. */
export function linear(x: Float32Array, w: Float32Array, inFeatures: number, outFeatures: number): Float32Array {
  const rows = x.length / inFeatures;
  const y = new Float32Array(rows * outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    const wo = o * inFeatures;
    for (let r = 0; r < rows; r++) {
      const xo = r * inFeatures;
      let acc = 0;
      for (let i = 0; i < inFeatures; i++) acc += x[xo + i]! * w[wo + i]!;
      y[r * outFeatures + o] = acc;
    }
  }
  return y;
}

const silu = (g: number) => g / (1 + Math.exp(-g));

// ---------------------------------------------------------------------------------------------
// KV cache

/**
 * Keys (after RoPE) and values per layer, `[maxSeqLen, n_kv_heads, head_dim]`, stored before the
 * GQA repetition as in the reference. `length` is the number of positions written so far.
 */
export class KVCache {
  readonly maxSeqLen: number;
  readonly nLayers: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  private filled = 0;

  constructor(a: ModelArgs, maxSeqLen: number) {
    if (!(Number.isSafeInteger(maxSeqLen) && maxSeqLen > 0))
      throw new RangeError(`maxSeqLen: expected a positive integer, got ${maxSeqLen}`);
    this.maxSeqLen = maxSeqLen;
    this.nLayers = a.n_layers;
    this.nKvHeads = a.n_kv_heads;
    this.headDim = headDim(a);
    const size = maxSeqLen * a.n_kv_heads * this.headDim;
    this.keys = Array.from({ length: a.n_layers }, () => new Float32Array(size));
    this.values = Array.from({ length: a.n_layers }, () => new Float32Array(size));
  }

  get length(): number {
    return this.filled;
  }

  /** Marks positions `[0, length)` valid; later positions are stale (used by `ReferenceModel.forward`). */
  setLength(length: number): void {
    if (!(Number.isSafeInteger(length) && length >= 0 && length <= this.maxSeqLen))
      throw new RangeError(`length: expected an integer in [0, ${this.maxSeqLen}], got ${length}`);
    this.filled = length;
  }
}

// ---------------------------------------------------------------------------------------------
// The model

interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  postAttentionNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** Holds every weight in memory as float32: meant for small models (tests, oracles). */
export class ReferenceModel {
  readonly args: ModelArgs;
  private readonly embed: Float32Array;
  private readonly layers: LayerWeights[];
  private readonly norm: Float32Array;
  private readonly head: Float32Array;
  private readonly invFreq: Float32Array;

  constructor(a: ModelArgs, weights: WeightSource) {
    this.args = a;
    const read = (name: string, shape: number[]): Float32Array => {
      const t = weights.read(name);
      if (!sameShape(t.shape, shape))
        throw new RangeError(`weight ${JSON.stringify(name)}: expected shape ${formatShape(shape)}, got ${formatShape(t.shape)}`);
      return t.data;
    };
    const shapes = new Map(llamaWeightShapes(a).map((w) => [w.name, w.shape]));
    const load = (name: string) => read(name, shapes.get(name)!);
    this.embed = load(EMBED_TOKENS);
    this.layers = Array.from({ length: a.n_layers }, (_, i) => {
      const n = layerWeightNames(i);
      return {
        inputNorm: load(n.inputNorm),
        q: load(n.q),
        k: load(n.k),
        v: load(n.v),
        o: load(n.o),
        postAttentionNorm: load(n.postAttentionNorm),
        gate: load(n.gate),
        up: load(n.up),
        down: load(n.down),
      };
    });
    this.norm = load(FINAL_NORM);
    this.head = a.tie_word_embeddings ? this.embed : load(LM_HEAD);
    this.invFreq = ropeInvFrequencies(a);
  }

  newCache(maxSeqLen = this.args.max_seq_len): KVCache {
    return new KVCache(this.args, maxSeqLen);
  }

  /**
   * Runs `tokens` at positions `startPos …`, reading positions `[0, startPos)` from the cache and
   * writing the new keys/values into it (the cache then holds `startPos + tokens.length` positions;
   * `startPos` may be below `cache.length` to overwrite). Returns the last token's logits `[V]`, or
   * with `allLogits` every token's logits `[S·V]`.
   */
  forward(tokens: readonly number[], startPos: number, cache: KVCache, opts: { allLogits?: boolean } = {}): Float32Array {
    const a = this.args;
    const S = tokens.length;
    this.checkForwardInput(tokens, startPos, cache);
    const D = a.dim;
    const hd = headDim(a);
    const ffn = ffnHiddenSize(a);
    const qDim = a.n_heads * hd;
    const kvDim = a.n_kv_heads * hd;
    const { cos, sin } = cosSinTable(this.invFreq, S, startPos);

    // Token embedding.
    const x = new Float32Array(S * D);
    tokens.forEach((t, s) => x.set(this.embed.subarray(t * D, (t + 1) * D), s * D));

    for (let l = 0; l < a.n_layers; l++) {
      const w = this.layers[l]!;
      // Attention block.
      const h = rmsNorm(x, w.inputNorm, a.norm_eps);
      const q = linear(h, w.q, D, qDim);
      const k = linear(h, w.k, D, kvDim);
      const v = linear(h, w.v, D, kvDim);
      for (let s = 0; s < S; s++) {
        for (let head = 0; head < a.n_heads; head++) applyRotaryHalf(q, s * qDim + head * hd, hd, cos, sin, s);
        for (let head = 0; head < a.n_kv_heads; head++) applyRotaryHalf(k, s * kvDim + head * hd, hd, cos, sin, s);
      }
      cache.keys[l]!.set(k, startPos * kvDim);
      cache.values[l]!.set(v, startPos * kvDim);
      const attn = this.attention(q, cache.keys[l]!, cache.values[l]!, startPos, S);
      addInPlace(x, linear(attn, w.o, qDim, D));

      // Feed-forward block (SwiGLU).
      const h2 = rmsNorm(x, w.postAttentionNorm, a.norm_eps);
      const gate = linear(h2, w.gate, D, ffn);
      const up = linear(h2, w.up, D, ffn);
      for (let i = 0; i < gate.length; i++) gate[i] = f32(silu(gate[i]!)) * up[i]!;
      addInPlace(x, linear(gate, w.down, ffn, D));
    }
    cache.setLength(startPos + S);

    // Output head: only the rows whose logits are wanted.
    const rows = opts.allLogits ? x : x.subarray((S - 1) * D);
    return linear(rmsNorm(rows, this.norm, a.norm_eps), this.head, D, a.vocab_size);
  }

  /**
   * Causal grouped-query attention for S new queries at positions `startPos …`. Query head j reads
   * kv head ⌊j / n_rep⌋ (the reference `repeat_kv` repeats each kv head n_rep times consecutively).
   */
  private attention(q: Float32Array, keys: Float32Array, values: Float32Array, startPos: number, S: number): Float32Array {
    const a = this.args;
    const hd = headDim(a);
    const nRep = a.n_heads / a.n_kv_heads;
    const qDim = a.n_heads * hd;
    const kvDim = a.n_kv_heads * hd;
    const scale = 1 / Math.sqrt(hd);
    const out = new Float32Array(S * qDim);
    const scores = new Float64Array(startPos + S);
    const acc = new Float64Array(hd);
    for (let s = 0; s < S; s++) {
      const visible = startPos + s + 1; // causal mask: positions 0 … startPos+s
      for (let head = 0; head < a.n_heads; head++) {
        const kvHead = Math.floor(head / nRep);
        const qo = s * qDim + head * hd;
        let max = -Infinity;
        for (let t = 0; t < visible; t++) {
          const ko = t * kvDim + kvHead * hd;
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[qo + i]! * keys[ko + i]!;
          scores[t] = dot * scale;
          if (scores[t]! > max) max = scores[t]!;
        }
        let sum = 0;
        for (let t = 0; t < visible; t++) sum += scores[t] = Math.exp(scores[t]! - max);
        acc.fill(0);
        for (let t = 0; t < visible; t++) {
          const p = scores[t]! / sum;
          const vo = t * kvDim + kvHead * hd;
          for (let i = 0; i < hd; i++) acc[i] += p * values[vo + i]!;
        }
        for (let i = 0; i < hd; i++) out[qo + i] = acc[i]!;
      }
    }
    return out;
  }

  private checkForwardInput(tokens: readonly number[], startPos: number, cache: KVCache): void {
    const a = this.args;
    if (tokens.length === 0) throw new RangeError("tokens: expected at least one token");
    tokens.forEach((t, i) => {
      if (!(Number.isInteger(t) && t >= 0 && t < a.vocab_size))
        throw new RangeError(`tokens[${i}]: token id ${t} is outside the vocabulary [0, ${a.vocab_size})`);
    });
    if (cache.nLayers !== a.n_layers || cache.nKvHeads !== a.n_kv_heads || cache.headDim !== headDim(a))
      throw new RangeError("cache: was made for a model of a different shape");
    if (!(Number.isSafeInteger(startPos) && startPos >= 0 && startPos <= cache.length))
      throw new RangeError(`startPos: expected an integer in [0, cache.length = ${cache.length}], got ${startPos}`);
    if (startPos + tokens.length > cache.maxSeqLen)
      throw new RangeError(`tokens: positions up to ${startPos + tokens.length} exceed the cache's maxSeqLen ${cache.maxSeqLen}`);
  }
}

function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] += y[i]!;
}
