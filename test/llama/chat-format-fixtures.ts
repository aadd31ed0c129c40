// Shared fixtures for the chat-format, tool-call, prompt and template tests: Meta's tokenizer.model and
// golden vectors from ../shared (read, never copied), loaded once per test file.

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loads } from "../../src/llama/python-json.js";
import { Tokenizer } from "../../src/llama/tokenizer.js";

export const SHARED_LLAMA3 = fileURLToPath(new URL("../../../shared/llama3/", import.meta.url));
const TOKENIZER_MODEL = `${SHARED_LLAMA3}tokenizer.model`;
const GOLDEN_VECTORS = `${SHARED_LLAMA3}golden-vectors.json`;
export const CHAT_TEMPLATE_PATH = `${SHARED_LLAMA3}chat_template.jinja`;

export const hasShared = existsSync(TOKENIZER_MODEL) && existsSync(GOLDEN_VECTORS) && existsSync(CHAT_TEMPLATE_PATH);
if (!hasShared) {
  console.warn(`\n!!! ${SHARED_LLAMA3} is absent: chat-format tests against Meta's data are SKIPPED !!!\n`);
}

let tokenizerPromise: Promise<Tokenizer> | undefined;

/** Meta's tokenizer.model, as the brief prescribes for these tests. */
export function sharedTokenizer(): Promise<Tokenizer> {
  tokenizerPromise ??= Tokenizer.fromFile(TOKENIZER_MODEL);
  return tokenizerPromise;
}

/**
 * The golden vectors. With `floats: "PythonFloat"` a float such as `1.0` keeps its Python type (plain
 * `JSON.parse` would turn it into the integer 1, which Python spells differently).
 */
export function golden(floats: "number" | "PythonFloat" = "number"): Record<string, any> {
  return loads(readFileSync(GOLDEN_VECTORS, "utf8"), { floats }) as Record<string, any>;
}

export function chatTemplate(): string {
  return readFileSync(CHAT_TEMPLATE_PATH, "utf8");
}
