/**
 * Llama model hyper-parameters.
 *
 * `ModelArgs` mirrors Meta's reference `ModelArgs` (`models/llama3/args.py`) field for field, so the
 * reference formulas (FFN hidden size, head_dim, RoPE scaling) can be written exactly as they are
 * there. `toHfConfig` / `fromHfConfig` convert to and from a Hugging Face `LlamaForCausalLM`
 * `config.json`, which is what checkpoints and transformers.js model folders carry.
 */
import { z } from "zod";

/** Llama 3.1 RoPE frequency scaling (`rope_type: "llama3"` in Hugging Face configs). */
export interface RopeScaling {
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

export interface ModelArgs {
  dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  multiple_of: number;
  ffn_dim_multiplier: number | null;
  norm_eps: number;
  rope_theta: number;
  use_scaled_rope: boolean;
  /** Scaling constants; non-null exactly when `use_scaled_rope`. */
  rope_scaling: RopeScaling | null;
  /** Longest sequence the model is configured for (HF `max_position_embeddings`). */
  max_seq_len: number;
  /** Output head shares the token-embedding matrix (Llama 3.2 1B/3B). */
  tie_word_embeddings: boolean;
}

/** A configuration value is missing, malformed or inconsistent; `field` names it. */
export class ModelConfigError extends Error {
  readonly field: string;
  constructor(field: string, detail: string) {
    super(`${field}: ${detail}`);
    this.name = "ModelConfigError";
    this.field = field;
  }
}

/** The constants hard-coded in Meta's `apply_scaling` (Llama 3.1). */
export const LLAMA31_ROPE_SCALING: Readonly<RopeScaling> = Object.freeze({
  factor: 8,
  low_freq_factor: 1,
  high_freq_factor: 4,
  original_max_position_embeddings: 8192,
});

/** Llama 3.2 1B/3B configurations use the same rule with factor 32. */
export const LLAMA32_ROPE_SCALING: Readonly<RopeScaling> = Object.freeze({ ...LLAMA31_ROPE_SCALING, factor: 32 });

/** Llama 3 special-token ids used in `config.json` / `generation_config.json`. */
export const BOS_TOKEN_ID = 128000;
export const HF_EOS_TOKEN_IDS: readonly number[] = Object.freeze([128001, 128008, 128009]);

const positiveInt = z.number().int().positive();
const positiveFinite = z.number().positive().finite();

const ropeScalingSchema = z.strictObject({
  factor: positiveFinite,
  low_freq_factor: positiveFinite,
  high_freq_factor: positiveFinite,
  original_max_position_embeddings: positiveInt,
});

const modelArgsSchema = z
  .strictObject({
    dim: positiveInt,
    n_layers: positiveInt,
    n_heads: positiveInt,
    n_kv_heads: positiveInt,
    vocab_size: positiveInt,
    multiple_of: positiveInt,
    ffn_dim_multiplier: positiveFinite.nullable(),
    norm_eps: positiveFinite,
    rope_theta: z.number().finite().gt(1),
    use_scaled_rope: z.boolean(),
    rope_scaling: ropeScalingSchema.nullable(),
    max_seq_len: positiveInt,
    tie_word_embeddings: z.boolean(),
  })
  .superRefine((a, ctx) => {
    const fail = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if (a.n_kv_heads > a.n_heads) fail("n_kv_heads", `must be <= n_heads (${a.n_heads}), got ${a.n_kv_heads}`);
    else if (a.n_heads % a.n_kv_heads !== 0)
      fail("n_kv_heads", `n_heads (${a.n_heads}) must be divisible by n_kv_heads (${a.n_kv_heads})`);
    if (a.dim % a.n_heads !== 0) fail("n_heads", `dim (${a.dim}) must be divisible by n_heads (${a.n_heads})`);
    else if ((a.dim / a.n_heads) % 2 !== 0)
      fail("n_heads", `head_dim = dim / n_heads = ${a.dim / a.n_heads} must be even for rotary embeddings`);
    if (a.use_scaled_rope !== (a.rope_scaling !== null))
      fail("rope_scaling", a.use_scaled_rope ? "required when use_scaled_rope is true" : "must be null when use_scaled_rope is false");
    // HF's llama3 rule divides by (high_freq_factor - low_freq_factor).
    if (a.rope_scaling && a.rope_scaling.high_freq_factor <= a.rope_scaling.low_freq_factor)
      fail("rope_scaling", "high_freq_factor must be greater than low_freq_factor");
  });

function firstIssue(error: z.ZodError, rename: (field: string) => string = (f) => f): ModelConfigError {
  const issue = error.issues[0]!;
  // A rejected unknown key is reported under the key itself, not its parent object.
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]!] : issue.path;
  const named = path.length > 0 ? [rename(String(path[0])), ...path.slice(1).map(String)].join(".") : "(root)";
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem(s))` : "";
  return new ModelConfigError(named, `${issue.message}${more}`);
}

export type ModelArgsInput = Partial<ModelArgs> & Pick<ModelArgs, "dim" | "n_layers" | "n_heads" | "vocab_size">;

/**
 * Completes a partial `ModelArgs` with the reference defaults and validates it.
 * Defaults follow `args.py` (n_kv_heads = n_heads, multiple_of 256, norm_eps 1e-5, rope_theta 5e5,
 * max_seq_len 2048); `use_scaled_rope` defaults to whether `rope_scaling` was given, and when
 * `use_scaled_rope` is set without constants Meta's `apply_scaling` constants (8, 1, 4, 8192) are used.
 * Unknown keys are rejected, so a typo does not silently fall back to a default.
 */
export function defineModelArgs(partial: ModelArgsInput): ModelArgs {
  if (partial === null || typeof partial !== "object") throw new ModelConfigError("(root)", "expected an object");
  const useScaled = partial.use_scaled_rope ?? (partial.rope_scaling != null);
  const candidate = {
    n_kv_heads: partial.n_heads,
    multiple_of: 256,
    ffn_dim_multiplier: null,
    norm_eps: 1e-5,
    rope_theta: 500000,
    max_seq_len: 2048,
    tie_word_embeddings: false,
    ...partial,
    use_scaled_rope: useScaled,
    rope_scaling: partial.rope_scaling ?? (useScaled ? { ...LLAMA31_ROPE_SCALING } : null),
  };
  const parsed = modelArgsSchema.safeParse(candidate);
  if (!parsed.success) throw firstIssue(parsed.error);
  const a = parsed.data;
  return { ...a, rope_scaling: a.rope_scaling ? { ...a.rope_scaling } : null };
}

export function headDim(a: ModelArgs): number {
  return a.dim / a.n_heads;
}

/** Reference FFN hidden size: `h = int(2·4·dim/3)`, times the multiplier, rounded up to `multiple_of`. */
export function ffnHiddenSize(a: Pick<ModelArgs, "dim" | "multiple_of" | "ffn_dim_multiplier">): number {
  let hidden = 4 * a.dim;
  hidden = Math.trunc((2 * hidden) / 3);
  if (a.ffn_dim_multiplier !== null) hidden = Math.trunc(a.ffn_dim_multiplier * hidden);
  return a.multiple_of * Math.ceil(hidden / a.multiple_of);
}

export type HfTorchDtype = "float32" | "float16" | "bfloat16";

/**
 * A `LlamaForCausalLM` `config.json` object. `extra` is merged last (e.g. `{ torch_dtype: "float16" }`).
 */
export function toHfConfig(a: ModelArgs, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: BOS_TOKEN_ID,
    eos_token_id: [...HF_EOS_TOKEN_IDS],
    head_dim: headDim(a),
    hidden_act: "silu",
    hidden_size: a.dim,
    initializer_range: 0.02,
    intermediate_size: ffnHiddenSize(a),
    max_position_embeddings: a.max_seq_len,
    mlp_bias: false,
    num_attention_heads: a.n_heads,
    num_hidden_layers: a.n_layers,
    num_key_value_heads: a.n_kv_heads,
    pretraining_tp: 1,
    rms_norm_eps: a.norm_eps,
    rope_scaling: a.rope_scaling ? { ...a.rope_scaling, rope_type: "llama3" } : null,
    rope_theta: a.rope_theta,
    tie_word_embeddings: a.tie_word_embeddings,
    torch_dtype: "bfloat16",
    use_cache: true,
    vocab_size: a.vocab_size,
    ...extra,
  };
}

// HF rope parameters: `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x, which also carries
// rope_theta). The type key was `type` before 4.45.
const hfRopeSchema = z
  .looseObject({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    rope_theta: positiveFinite.optional(),
    factor: positiveFinite.optional(),
    low_freq_factor: positiveFinite.optional(),
    high_freq_factor: positiveFinite.optional(),
    original_max_position_embeddings: positiveInt.optional(),
  })
  .nullable()
  .optional();

const hfConfigSchema = z.looseObject({
  model_type: z.literal("llama").optional(),
  hidden_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullable().optional(),
  vocab_size: positiveInt,
  intermediate_size: positiveInt,
  rms_norm_eps: positiveFinite.optional(),
  rope_theta: positiveFinite.optional(),
  rope_scaling: hfRopeSchema,
  rope_parameters: hfRopeSchema,
  max_position_embeddings: positiveInt.optional(),
  tie_word_embeddings: z.boolean().optional(),
  head_dim: positiveInt.nullable().optional(),
  hidden_act: z.literal("silu").optional(),
  attention_bias: z.literal(false).optional(),
  mlp_bias: z.literal(false).optional(),
});

const HF_FIELD_FOR: Record<string, string> = {
  dim: "hidden_size",
  n_layers: "num_hidden_layers",
  n_heads: "num_attention_heads",
  n_kv_heads: "num_key_value_heads",
  vocab_size: "vocab_size",
  norm_eps: "rms_norm_eps",
  rope_theta: "rope_theta",
  rope_scaling: "rope_scaling",
  use_scaled_rope: "rope_scaling",
  max_seq_len: "max_position_embeddings",
  tie_word_embeddings: "tie_word_embeddings",
  multiple_of: "intermediate_size",
  ffn_dim_multiplier: "intermediate_size",
};

/**
 * Picks `multiple_of` / `ffn_dim_multiplier` so that `ffnHiddenSize` reproduces `intermediate_size`:
 * the rule of a preset with the same `dim` when it fits (so published models round-trip to their
 * reference values), otherwise `multiple_of = intermediate_size` with a multiplier only when the
 * un-multiplied size would overshoot.
 */
export function ffnRuleFor(dim: number, intermediateSize: number): Pick<ModelArgs, "multiple_of" | "ffn_dim_multiplier"> {
  for (const preset of Object.values(PRESETS)) {
    if (preset.dim === dim && ffnHiddenSize(preset) === intermediateSize)
      return { multiple_of: preset.multiple_of, ffn_dim_multiplier: preset.ffn_dim_multiplier };
  }
  const base = Math.trunc((8 * dim) / 3);
  const rule = { multiple_of: intermediateSize, ffn_dim_multiplier: base <= intermediateSize ? null : intermediateSize / base };
  if (ffnHiddenSize({ dim, ...rule }) !== intermediateSize)
    throw new ModelConfigError("intermediate_size", `cannot be expressed with the reference FFN formula for hidden_size ${dim}`);
  return rule;
}

/** Reads a Hugging Face Llama `config.json` (already JSON-parsed; untrusted). */
export function fromHfConfig(json: unknown): ModelArgs {
  const parsed = hfConfigSchema.safeParse(json);
  if (!parsed.success) throw firstIssue(parsed.error);
  const c = parsed.data;
  const rope = c.rope_parameters ?? c.rope_scaling ?? null;
  const ropeType = rope ? (rope.rope_type ?? rope.type ?? "default") : "default";
  let ropeScaling: RopeScaling | null = null;
  if (ropeType === "llama3") {
    const r = rope!;
    const missing = (["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const).find(
      (k) => r[k] === undefined,
    );
    const where = c.rope_parameters ? "rope_parameters" : "rope_scaling";
    if (missing) throw new ModelConfigError(`${where}.${missing}`, "required for rope_type llama3");
    ropeScaling = {
      factor: r.factor!,
      low_freq_factor: r.low_freq_factor!,
      high_freq_factor: r.high_freq_factor!,
      original_max_position_embeddings: r.original_max_position_embeddings!,
    };
  } else if (ropeType !== "default") {
    throw new ModelConfigError(c.rope_parameters ? "rope_parameters.rope_type" : "rope_scaling.rope_type",
      `unsupported rope_type ${JSON.stringify(ropeType)} (only "default" and "llama3")`);
  }
  const ropeTheta = c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000; // HF LlamaConfig default
  if (c.head_dim != null && c.head_dim * c.num_attention_heads !== c.hidden_size)
    throw new ModelConfigError("head_dim", `must equal hidden_size / num_attention_heads (${c.hidden_size / c.num_attention_heads}), got ${c.head_dim}`);
  const partial: ModelArgsInput = {
    dim: c.hidden_size,
    n_layers: c.num_hidden_layers,
    n_heads: c.num_attention_heads,
    n_kv_heads: c.num_key_value_heads ?? c.num_attention_heads,
    vocab_size: c.vocab_size,
    norm_eps: c.rms_norm_eps ?? 1e-6, // HF LlamaConfig default
    rope_theta: ropeTheta,
    use_scaled_rope: ropeScaling !== null,
    rope_scaling: ropeScaling,
    max_seq_len: c.max_position_embeddings ?? 2048,
    tie_word_embeddings: c.tie_word_embeddings ?? false,
  };
  try {
    return defineModelArgs({ ...partial, ...ffnRuleFor(c.hidden_size, c.intermediate_size) });
  } catch (e) {
    if (e instanceof ModelConfigError) {
      const [top, ...rest] = e.field.split(".");
      const hf = [HF_FIELD_FOR[top!] ?? top!, ...rest].join(".");
      throw new ModelConfigError(hf, e.message.slice(e.field.length + 2));
    }
    throw e;
  }
}

const LLAMA_VOCAB = 128256;

const llama31 = (p: Pick<ModelArgs, "dim" | "n_layers" | "n_heads" | "multiple_of" | "ffn_dim_multiplier">): ModelArgs =>
  frozen(defineModelArgs({ ...p, n_kv_heads: 8, vocab_size: LLAMA_VOCAB, rope_theta: 500000, norm_eps: 1e-5,
    use_scaled_rope: true, rope_scaling: { ...LLAMA31_ROPE_SCALING }, max_seq_len: 131072 }));

const llama32 = (p: Pick<ModelArgs, "dim" | "n_layers" | "n_heads" | "multiple_of" | "ffn_dim_multiplier">): ModelArgs =>
  frozen(defineModelArgs({ ...p, n_kv_heads: 8, vocab_size: LLAMA_VOCAB, rope_theta: 500000, norm_eps: 1e-5,
    use_scaled_rope: true, rope_scaling: { ...LLAMA32_ROPE_SCALING }, max_seq_len: 131072, tie_word_embeddings: true }));

// Tiny test shapes keep the real vocabulary (so the real tokenizer works) and a small dim, because the
// vocab × dim embedding dominates their size (dim 64: 8.2M floats per matrix). head_dim 16 with
// theta 5e5 still exercises all three RoPE scaling regimes (4 unchanged, 1 blended, 3 divided).
const tiny = (p: Partial<ModelArgs>): ModelArgs =>
  frozen(defineModelArgs({ dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: LLAMA_VOCAB, multiple_of: 32,
    ffn_dim_multiplier: null, rope_theta: 500000, use_scaled_rope: true, rope_scaling: { ...LLAMA31_ROPE_SCALING },
    max_seq_len: 4096, ...p }));

function frozen(a: ModelArgs): ModelArgs {
  if (a.rope_scaling) Object.freeze(a.rope_scaling);
  return Object.freeze(a);
}

export const PRESETS = Object.freeze({
  "llama-3.1-8b": llama31({ dim: 4096, n_layers: 32, n_heads: 32, multiple_of: 1024, ffn_dim_multiplier: 1.3 }),
  "llama-3.1-70b": llama31({ dim: 8192, n_layers: 80, n_heads: 64, multiple_of: 4096, ffn_dim_multiplier: 1.3 }),
  "llama-3.1-405b": llama31({ dim: 16384, n_layers: 126, n_heads: 128, multiple_of: 4096, ffn_dim_multiplier: 1.2 }),
  "llama-3-8b": frozen(defineModelArgs({ dim: 4096, n_layers: 32, n_heads: 32, n_kv_heads: 8, vocab_size: LLAMA_VOCAB,
    multiple_of: 1024, ffn_dim_multiplier: 1.3, rope_theta: 500000, max_seq_len: 8192 })),
  "llama-3.2-1b": llama32({ dim: 2048, n_layers: 16, n_heads: 32, multiple_of: 256, ffn_dim_multiplier: 1.5 }),
  "llama-3.2-3b": llama32({ dim: 3072, n_layers: 28, n_heads: 24, multiple_of: 256, ffn_dim_multiplier: 1.0 }),
  /** GQA 2:1, head_dim 16, untied. */
  tiny: tiny({}),
  /** GQA 4:1, head_dim 8. */
  "tiny-gqa": tiny({ n_heads: 8, n_kv_heads: 2 }),
  /** Multi-query attention (one kv head). */
  "tiny-mqa": tiny({ n_heads: 4, n_kv_heads: 1 }),
  /** Multi-head attention (no grouping). */
  "tiny-mha": tiny({ n_heads: 4, n_kv_heads: 4 }),
  /** Tied head and Llama 3.2's factor-32 RoPE scaling, three layers. */
  "tiny-tied": tiny({ n_layers: 3, tie_word_embeddings: true, rope_scaling: { ...LLAMA32_ROPE_SCALING } }),
  /** No RoPE scaling (Llama 3 style). */
  "tiny-unscaled": tiny({ use_scaled_rope: false, rope_scaling: null }),
} satisfies Record<string, ModelArgs>);

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}
