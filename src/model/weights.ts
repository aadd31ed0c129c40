/**
 * Llama weights by Hugging Face name and layout: the list of tensors a model needs, seeded random
 * initialisation, in-memory sources, and the Meta → Hugging Face query/key permutation.
 */
import { ffnHiddenSize, headDim, type ModelArgs } from "./config.js";
import { Rng } from "./rng.js";
import { formatShape, numel, sameShape, type Tensor, type WeightSource } from "./tensor.js";

export const EMBED_TOKENS = "model.embed_tokens.weight";
export const FINAL_NORM = "model.norm.weight";
export const LM_HEAD = "lm_head.weight";

/** Per-layer weight names, `model.layers.{i}.…`. */
export function layerWeightNames(i: number) {
  const p = `model.layers.${i}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    o: `${p}.self_attn.o_proj.weight`,
    postAttentionNorm: `${p}.post_attention_layernorm.weight`,
    gate: `${p}.mlp.gate_proj.weight`,
    up: `${p}.mlp.up_proj.weight`,
    down: `${p}.mlp.down_proj.weight`,
  };
}

/**
 * Every tensor of the model in a stable order (embedding, layers, final norm, head). Linear weights
 * are `[out, in]`; `lm_head.weight` is absent when the head is tied to the embedding.
 */
export function llamaWeightShapes(a: ModelArgs): Array<{ name: string; shape: number[] }> {
  const hd = headDim(a);
  const ffn = ffnHiddenSize(a);
  const out: Array<{ name: string; shape: number[] }> = [{ name: EMBED_TOKENS, shape: [a.vocab_size, a.dim] }];
  for (let i = 0; i < a.n_layers; i++) {
    const n = layerWeightNames(i);
    out.push(
      { name: n.inputNorm, shape: [a.dim] },
      { name: n.q, shape: [a.n_heads * hd, a.dim] },
      { name: n.k, shape: [a.n_kv_heads * hd, a.dim] },
      { name: n.v, shape: [a.n_kv_heads * hd, a.dim] },
      { name: n.o, shape: [a.dim, a.n_heads * hd] },
      { name: n.postAttentionNorm, shape: [a.dim] },
      { name: n.gate, shape: [ffn, a.dim] },
      { name: n.up, shape: [ffn, a.dim] },
      { name: n.down, shape: [a.dim, ffn] },
    );
  }
  out.push({ name: FINAL_NORM, shape: [a.dim] });
  if (!a.tie_word_embeddings) out.push({ name: LM_HEAD, shape: [a.vocab_size, a.dim] });
  return out;
}

/** Total number of parameters (the tied head counted once). */
export function parameterCount(a: ModelArgs): number {
  return llamaWeightShapes(a).reduce((n, w) => n + numel(w.shape), 0);
}

/** Checkpoint tensors that carry no weights of their own and are skipped on import. */
export function isIgnorableCheckpointTensor(name: string, a: ModelArgs): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name) || (a.tie_word_embeddings && name === LM_HEAD);
}

/** A `WeightSource` over a fixed name → shape table whose tensors come from `load`. */
export function weightSourceFrom(a: ModelArgs, load: (name: string, shape: number[]) => Tensor): WeightSource {
  const table = new Map(llamaWeightShapes(a).map((w) => [w.name, w.shape]));
  const shapeOf = (name: string): number[] => {
    const shape = table.get(name);
    if (!shape) throw new RangeError(`unknown weight ${JSON.stringify(name)}`);
    return shape;
  };
  return {
    args: a,
    names: () => [...table.keys()],
    shape: (name) => [...shapeOf(name)],
    read: (name) => load(name, [...shapeOf(name)]),
  };
}

const isNormWeight = (name: string) => name.endsWith("layernorm.weight") || name === FINAL_NORM;

/**
 * Deterministic random weights: each tensor comes from its own stream `Rng.derive(seed, name)`, so a
 * tensor's values do not depend on which tensors were read before it.
 *
 * Scales keep activations near unit size so logits are well conditioned: linear weights
 * `N(0, 1/in)`, embedding (and hence a tied head) `N(0, 1/dim)`, an untied head `N(0, 1/dim)`, so
 * logits have a standard deviation near 1. Norm weights are `1 + N(0, 0.1²)` rather than exactly 1, so
 * that a forgotten or misplaced norm weight changes the logits and is caught by comparisons.
 */
export function randomWeights(a: ModelArgs, seed: number): WeightSource {
  return weightSourceFrom(a, (name, shape) => {
    const rng = Rng.derive(seed, name);
    const data = new Float32Array(numel(shape));
    if (isNormWeight(name)) rng.fillNormal(data, 0.1, 1);
    else rng.fillNormal(data, 1 / Math.sqrt(shape[1]!));
    return { shape, data };
  });
}

/**
 * Weights held in memory. Every tensor the model needs must be present with the right shape; unknown
 * names are rejected (ignorable checkpoint tensors, see `isIgnorableCheckpointTensor`, are skipped).
 * `read` returns copies.
 */
export function inMemoryWeights(a: ModelArgs, map: ReadonlyMap<string, Tensor>): WeightSource {
  const expected = llamaWeightShapes(a);
  const known = new Set(expected.map((w) => w.name));
  for (const name of map.keys())
    if (!known.has(name) && !isIgnorableCheckpointTensor(name, a)) throw new RangeError(`unexpected weight ${JSON.stringify(name)}`);
  for (const { name, shape } of expected) {
    const t = map.get(name);
    if (!t) throw new RangeError(`missing weight ${JSON.stringify(name)}`);
    if (!sameShape(t.shape, shape))
      throw new RangeError(`weight ${JSON.stringify(name)}: expected shape ${formatShape(shape)}, got ${formatShape(t.shape)}`);
    if (t.data.length !== numel(shape))
      throw new RangeError(`weight ${JSON.stringify(name)}: data has ${t.data.length} values, shape needs ${numel(shape)}`);
  }
  return weightSourceFrom(a, (name, shape) => ({ shape, data: map.get(name)!.data.slice() }));
}

/** Reads every tensor into a map (small models and tests). */
export function loadAll(ws: WeightSource): Map<string, Tensor> {
  return new Map(ws.names().map((name) => [name, ws.read(name)]));
}

/**
 * Meta checkpoints rotate interleaved pairs `(x[2i], x[2i+1])`; Hugging Face rotates halves
 * `(x[i], x[i + hd/2])`. The conversion permutes the output rows of wq and wk within each head
 * (`convert_llama_weights_to_hf.py`: `view(n_heads, hd/2, 2, in).transpose(1, 2)`):
 * HF row `h·hd + j·hd/2 + i` is Meta row `h·hd + 2i + j`. Use `nHeads = n_kv_heads` for wk.
 */
export function permuteMetaToHf(w: Tensor, nHeads: number): Tensor {
  return permuteRows(w, nHeads, (hd, i, j) => [j * (hd / 2) + i, 2 * i + j]);
}

/** Inverse of `permuteMetaToHf`. */
export function permuteHfToMeta(w: Tensor, nHeads: number): Tensor {
  return permuteRows(w, nHeads, (hd, i, j) => [2 * i + j, j * (hd / 2) + i]);
}

function permuteRows(w: Tensor, nHeads: number, map: (hd: number, i: number, j: number) => [to: number, from: number]): Tensor {
  if (w.shape.length < 1) throw new RangeError("permute: expected a tensor with at least one dimension");
  const rows = w.shape[0]!;
  const rowSize = w.data.length / rows;
  if (!(Number.isInteger(nHeads) && nHeads > 0 && rows % nHeads === 0 && (rows / nHeads) % 2 === 0))
    throw new RangeError(`permute: ${rows} rows cannot be split into ${nHeads} heads of even size`);
  const hd = rows / nHeads;
  const out = new Float32Array(w.data.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < hd / 2; i++)
      for (let j = 0; j < 2; j++) {
        const [to, from] = map(hd, i, j);
        out.set(w.data.subarray((h * hd + from) * rowSize, (h * hd + from + 1) * rowSize), (h * hd + to) * rowSize);
      }
  return { shape: [...w.shape], data: out };
}
