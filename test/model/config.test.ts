import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  defineModelArgs,
  ffnHiddenSize,
  ffnRuleFor,
  fromHfConfig,
  headDim,
  isPresetName,
  LLAMA31_ROPE_SCALING,
  ModelConfigError,
  PRESETS,
  toHfConfig,
  type ModelArgsInput,
} from "../../src/model/config.js";

function configError(fn: () => unknown): ModelConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelConfigError);
    return e as ModelConfigError;
  }
  throw new Error("expected a ModelConfigError");
}

const base: ModelArgsInput = { dim: 64, n_layers: 2, n_heads: 4, vocab_size: 1000 };

describe("presets", () => {
  // FFN sizes from llama-reference.md 5.2 (pre-move sku_list.py) and the published Llama 3.2 configs.
  it.each([
    ["llama-3.1-8b", 14336],
    ["llama-3.1-70b", 28672],
    ["llama-3.1-405b", 53248],
    ["llama-3-8b", 14336],
    ["llama-3.2-1b", 8192],
    ["llama-3.2-3b", 8192],
  ] as const)("%s has FFN hidden size %d", (name, ffn) => {
    expect(ffnHiddenSize(PRESETS[name])).toBe(ffn);
  });

  it("8B by hand: int(2·16384/3) = 10922, int(1.3·10922) = 14198, rounded up to 1024 → 14336", () => {
    expect(Math.trunc((2 * 4 * 4096) / 3)).toBe(10922);
    expect(Math.trunc(1.3 * 10922)).toBe(14198);
    expect(ffnHiddenSize({ dim: 4096, multiple_of: 1024, ffn_dim_multiplier: 1.3 })).toBe(14 * 1024);
  });

  it("head_dim is 128 for the 3.1 models and 3B, 64 for 1B", () => {
    for (const name of ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-3b"] as const)
      expect(headDim(PRESETS[name])).toBe(128);
    expect(headDim(PRESETS["llama-3.2-1b"])).toBe(64);
  });

  it("Llama 3.1 uses Meta's scaling constants, 3.2 factor 32 and a tied head, Llama 3 no scaling", () => {
    expect(PRESETS["llama-3.1-8b"].rope_scaling).toEqual({ factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(PRESETS["llama-3.2-1b"].rope_scaling?.factor).toBe(32);
    expect(PRESETS["llama-3.2-1b"].tie_word_embeddings).toBe(true);
    expect(PRESETS["llama-3.1-8b"].tie_word_embeddings).toBe(false);
    expect(PRESETS["llama-3-8b"].use_scaled_rope).toBe(false);
    expect(PRESETS["llama-3-8b"].rope_scaling).toBeNull();
  });

  it("tiny shapes keep the real vocabulary and cover GQA ratios and tied heads", () => {
    expect(PRESETS.tiny.vocab_size).toBe(128256);
    expect(PRESETS["tiny-gqa"].n_heads / PRESETS["tiny-gqa"].n_kv_heads).toBe(4);
    expect(PRESETS["tiny-mha"].n_kv_heads).toBe(PRESETS["tiny-mha"].n_heads);
    expect(PRESETS["tiny-mqa"].n_kv_heads).toBe(1);
    expect(PRESETS["tiny-tied"].tie_word_embeddings).toBe(true);
    expect(isPresetName("tiny")).toBe(true);
    expect(isPresetName("toString")).toBe(false);
  });

  it("presets are frozen", () => {
    expect(() => {
      (PRESETS.tiny as { dim: number }).dim = 1;
    }).toThrow(TypeError);
  });
});

describe("defineModelArgs", () => {
  it("fills the reference defaults (args.py)", () => {
    const a = defineModelArgs(base);
    expect(a).toEqual({
      ...base,
      n_kv_heads: 4,
      multiple_of: 256,
      ffn_dim_multiplier: null,
      norm_eps: 1e-5,
      rope_theta: 500000,
      use_scaled_rope: false,
      rope_scaling: null,
      max_seq_len: 2048,
      tie_word_embeddings: false,
    });
  });

  it("use_scaled_rope without constants gets Meta's apply_scaling constants (8, 1, 4, 8192)", () => {
    expect(defineModelArgs({ ...base, use_scaled_rope: true }).rope_scaling).toEqual(LLAMA31_ROPE_SCALING);
    // Giving constants implies use_scaled_rope.
    const a = defineModelArgs({ ...base, rope_scaling: { ...LLAMA31_ROPE_SCALING, factor: 32 } });
    expect(a.use_scaled_rope).toBe(true);
    expect(a.rope_scaling?.factor).toBe(32);
  });

  it.each([
    [{ n_kv_heads: 3 }, "n_kv_heads", /divisible/],
    [{ n_kv_heads: 8 }, "n_kv_heads", /<= n_heads/],
    [{ dim: 66 }, "n_heads", /divisible/],
    [{ dim: 12, n_heads: 4 }, "n_heads", /even/],
    [{ dim: 64.5 }, "dim", /int/i],
    [{ n_layers: 0 }, "n_layers", /(>|positive|too small)/i],
    [{ vocab_size: -5 }, "vocab_size", /./],
    [{ norm_eps: 0 }, "norm_eps", /./],
    [{ rope_theta: Number.NaN }, "rope_theta", /./],
    [{ ffn_dim_multiplier: -1 }, "ffn_dim_multiplier", /./],
    [{ use_scaled_rope: false, rope_scaling: LLAMA31_ROPE_SCALING }, "rope_scaling", /null/],
    [{ rope_scaling: { ...LLAMA31_ROPE_SCALING, high_freq_factor: 1 } }, "rope_scaling", /greater/],
    [{ rope_scaling: { ...LLAMA31_ROPE_SCALING, original_max_position_embeddings: 0.5 } }, "rope_scaling.original_max_position_embeddings", /./],
    [{ nheads: 4 }, "nheads", /Unrecognized/],
  ] as Array<[Record<string, unknown>, string, RegExp]>)("rejects %j naming %s", (change, field, message) => {
    const e = configError(() => defineModelArgs({ ...base, ...change } as ModelArgsInput));
    expect(e.field).toBe(field);
    expect(e.message.startsWith(`${field}: `)).toBe(true);
    expect(e.message).toMatch(message);
  });

  it("rejects non-objects", () => {
    expect(configError(() => defineModelArgs(null as unknown as ModelArgsInput)).field).toBe("(root)");
  });
});

// Field values as published in meta-llama/Llama-3.1-8B-Instruct and Llama-3.2-1B-Instruct config.json.
const publishedLlama31_8b = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.43.0.dev0",
  use_cache: true,
  vocab_size: 128256,
};
const publishedLlama32_1b = {
  ...publishedLlama31_8b,
  head_dim: 64,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rope_scaling: { ...publishedLlama31_8b.rope_scaling, factor: 32.0 },
  tie_word_embeddings: true,
};

describe("Hugging Face config.json", () => {
  it("the published 8B and 1B configurations read as the presets", () => {
    expect(fromHfConfig(publishedLlama31_8b)).toEqual(PRESETS["llama-3.1-8b"]);
    expect(fromHfConfig(publishedLlama32_1b)).toEqual(PRESETS["llama-3.2-1b"]);
  });

  it("toHfConfig writes the published fields", () => {
    const written = toHfConfig(PRESETS["llama-3.1-8b"]);
    for (const [key, value] of Object.entries(publishedLlama31_8b)) {
      if (key === "transformers_version") continue;
      expect(written[key], key).toEqual(value);
    }
    expect(written.head_dim).toBe(128);
    expect(toHfConfig(PRESETS["llama-3.2-1b"]).tie_word_embeddings).toBe(true);
    expect(toHfConfig(PRESETS["llama-3-8b"]).rope_scaling).toBeNull();
    expect(toHfConfig(PRESETS.tiny, { torch_dtype: "float16" }).torch_dtype).toBe("float16");
  });

  it.each(Object.keys(PRESETS))("%s round-trips exactly through JSON", (name) => {
    const a = PRESETS[name as keyof typeof PRESETS];
    expect(fromHfConfig(JSON.parse(JSON.stringify(toHfConfig(a))))).toEqual(a);
  });

  it("any intermediate_size round-trips through the FFN rule", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 2, max: 40000 }), (heads, intermediate) => {
        const dim = heads * 2 * 8;
        const rule = ffnRuleFor(dim, intermediate);
        expect(ffnHiddenSize({ dim, ...rule })).toBe(intermediate);
        const a = fromHfConfig({ hidden_size: dim, num_hidden_layers: 1, num_attention_heads: heads, vocab_size: 10, intermediate_size: intermediate });
        expect(toHfConfig(a).intermediate_size).toBe(intermediate);
      }),
      { numRuns: 300 },
    );
  });

  it("reads transformers 5 rope_parameters and the pre-4.45 `type` key", () => {
    const { rope_scaling, rope_theta, ...rest } = publishedLlama31_8b;
    expect(fromHfConfig({ ...rest, rope_parameters: { ...rope_scaling, rope_theta } })).toEqual(PRESETS["llama-3.1-8b"]);
    const { rope_type, ...scaling } = rope_scaling;
    expect(rope_type).toBe("llama3");
    expect(fromHfConfig({ ...publishedLlama31_8b, rope_scaling: { ...scaling, type: "llama3" } })).toEqual(PRESETS["llama-3.1-8b"]);
    expect(fromHfConfig({ ...publishedLlama31_8b, rope_scaling: null }).use_scaled_rope).toBe(false);
  });

  it("uses HF LlamaConfig defaults for absent optional fields", () => {
    const a = fromHfConfig({ hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, intermediate_size: 172 });
    expect(a.n_kv_heads).toBe(4);
    expect(a.rope_theta).toBe(10000);
    expect(a.norm_eps).toBe(1e-6);
    expect(a.max_seq_len).toBe(2048);
  });

  it.each([
    [{ num_key_value_heads: 5 }, "num_key_value_heads"],
    [{ hidden_size: "4096" }, "hidden_size"],
    [{ intermediate_size: undefined }, "intermediate_size"],
    [{ head_dim: 100 }, "head_dim"],
    [{ rope_scaling: { rope_type: "yarn", factor: 4 } }, "rope_scaling.rope_type"],
    [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, "rope_scaling.low_freq_factor"],
    [{ rope_scaling: { ...publishedLlama31_8b.rope_scaling, high_freq_factor: 0.5 } }, "rope_scaling"],
    [{ hidden_act: "gelu" }, "hidden_act"],
    [{ model_type: "mistral" }, "model_type"],
    [{ mlp_bias: true }, "mlp_bias"],
  ] as Array<[Record<string, unknown>, string]>)("rejects %j naming %s", (change, field) => {
    expect(configError(() => fromHfConfig({ ...publishedLlama31_8b, ...change })).field).toBe(field);
  });

  it("rejects non-object input", () => {
    for (const bad of [null, 42, "config", []]) expect(() => fromHfConfig(bad)).toThrow(ModelConfigError);
  });
});
