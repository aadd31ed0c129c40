/**
 * Node helper for the built edge asset: where `npm run build:tokenizer` writes it and how to load it.
 * (Workers import the asset as a Data module and call `Tokenizer.fromData` directly.)
 */

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../llama/tokenizer.js";

/** `<repo>/build/llama3-tokenizer.bin` (the same from `src/node` and from `dist/node`). */
export const DEFAULT_TOKENIZER_ASSET_PATH: string = fileURLToPath(
  new URL("../../build/llama3-tokenizer.bin", import.meta.url),
);

/** Loads the built Llama 3 tokenizer asset. */
export async function loadDefaultTokenizer(): Promise<Tokenizer> {
  let data: Uint8Array;
  try {
    data = await readFile(DEFAULT_TOKENIZER_ASSET_PATH);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        `The Llama 3 tokenizer asset ${DEFAULT_TOKENIZER_ASSET_PATH} does not exist: run \`npm run build:tokenizer\` first.`,
      );
    }
    throw error;
  }
  return Tokenizer.fromData(data);
}
