// Built model folders as transformers.js 4.3.1 loads and drives them (CPU EP): greedy generate()
// must reproduce the reference generation token for token; the folder's tokenizer and config work.
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env } from "@huggingface/transformers";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { HF_EOS_TOKEN_IDS } from "../../src/model/config.js";
import { generate } from "../../src/model/generation.js";
import { storedWeights, type GraphFlavour, type ModelDtype } from "../../src/model/onnx/index.js";
import { ReferenceModel } from "../../src/model/reference.js";
import { QDQ_FLOAT_ACCURACY, TEST_PROMPT, tinyModelDir, tinyWeights } from "../helpers/models.js";

const NEW_TOKENS = 32;

beforeAll(() => {
  env.allowRemoteModels = false;
});

function ids(tokens: number[]): Tensor {
  return new Tensor("int64", BigInt64Array.from(tokens, BigInt), [1, tokens.length]);
}

/** transformers.js greedy output after the prompt, cut before the first stop token like the reference. */
async function transformersGreedy(dir: string, dtype: ModelDtype | undefined): Promise<number[]> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, {
    local_files_only: true,
    device: "cpu",
    ...(dtype ? { dtype } : {}),
    session_options: { extra: QDQ_FLOAT_ACCURACY },
  });
  try {
    const output = (await model.generate({
      input_ids: ids(TEST_PROMPT),
      attention_mask: new Tensor("int64", new BigInt64Array(TEST_PROMPT.length).fill(1n), [1, TEST_PROMPT.length]),
      max_new_tokens: NEW_TOKENS,
      do_sample: false,
    } as never)) as Tensor;
    const generated = Array.from(output.data as BigInt64Array, Number).slice(TEST_PROMPT.length);
    const stop = generated.findIndex((t) => HF_EOS_TOKEN_IDS.includes(t));
    return stop < 0 ? generated : generated.slice(0, stop);
  } finally {
    await model.dispose();
  }
}

function referenceGreedy(preset: string, dtype: ModelDtype): number[] {
  const weights = tinyWeights(preset);
  const model = new ReferenceModel(weights.args, storedWeights(weights, dtype));
  return generate(model, [TEST_PROMPT], { maxGenLen: NEW_TOKENS, temperature: 0 })[0].tokens;
}

describe("transformers.js generate() on built folders", () => {
  it.each([
    ["tiny", "standard", "fp32"],
    ["tiny-gqa", "standard", "q4"],
    ["tiny-mha", "gpu", "fp32"],
    ["tiny-tied", "gpu", "q4"],
  ] as const)("%s %s %s: greedy tokens equal the reference generation", async (preset, flavour: GraphFlavour, dtype: ModelDtype) => {
    const dir = await tinyModelDir({ preset, flavour, dtypes: [dtype] });
    const want = referenceGreedy(preset, dtype);
    expect(want.length).toBeGreaterThan(0);
    expect(await transformersGreedy(dir, dtype)).toEqual(want);
  });

  it("loads the folder's default dtype from config.json when none is passed", async () => {
    // Without transformers.js_config.dtype, transformers.js would look for onnx/model.onnx (fp32),
    // which this folder does not have.
    const dir = await tinyModelDir({ preset: "tiny-tied", flavour: "gpu", dtypes: ["q4", "fp32"] });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(config["transformers.js_config"]).toEqual({
      dtype: "q4",
      use_external_data_format: { "model_q4.onnx": 1, "model.onnx": 1 },
    });
    expect(await transformersGreedy(dir, undefined)).toEqual(referenceGreedy("tiny-tied", "q4"));
  });

  it("ships a tokenizer with a chat template and the Llama 3.1 stop tokens", async () => {
    const dir = await tinyModelDir({ preset: "tiny", flavour: "gpu", dtypes: ["fp32"] });
    const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    const prompt = tokenizer.apply_chat_template([{ role: "user", content: "Hello" }], { tokenize: false, add_generation_prompt: true });
    expect(prompt).toBe("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    // "Hello" is token 9906 in the Llama 3 vocabulary (js-tiktoken agrees, see the tokenizer tests).
    expect(tokenizer.encode("Hello", { add_special_tokens: false })).toEqual([9906]);
    const generation = JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8"));
    expect(generation).toEqual({ bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] });
  });
});
