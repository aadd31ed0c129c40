/**
 * Readers for the two published forms of the Llama 3 BPE vocabulary. Both produce the token byte
 * strings indexed by rank, which `RankTable.build` compiles:
 *
 * - tiktoken `tokenizer.model`: lines of `<base64 bytes> <rank>` (llama-models `load_bpe_file`);
 * - Hugging Face `tokenizer.json`: a byte-level BPE whose vocabulary ids are the ranks, with bytes
 *   spelled through GPT-2's byte-to-unicode alphabet.
 */

import { NUM_BASE_TOKENS } from "./special-tokens.js";
import { LLAMA3_SPLIT_PATTERN } from "./split-regex.js";

export class VocabularyError extends Error {
  override name = "VocabularyError";
}

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Parses a tiktoken BPE file. Like the reference loader, empty lines and lines that do not parse are
 * skipped; the ranks must then be exactly 0..127999.
 */
export function parseTiktokenBpe(text: string): Uint8Array[] {
  const tokens: (Uint8Array | undefined)[] = new Array(NUM_BASE_TOKENS);
  let count = 0;
  for (const line of text.split(/\r\n|\r|\n/)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 2 || fields[0] === "") continue;
    const rank = Number(fields[1]);
    if (!/^\d+$/.test(fields[1])) continue;
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(fields[0]);
    } catch {
      continue;
    }
    if (rank >= NUM_BASE_TOKENS) {
      throw new VocabularyError(`tokenizer.model: rank ${rank} is outside 0..${NUM_BASE_TOKENS - 1} (not a Llama 3 vocabulary)`);
    }
    if (tokens[rank] !== undefined) throw new VocabularyError(`tokenizer.model: rank ${rank} appears twice`);
    tokens[rank] = bytes;
    count++;
  }
  return requireAllRanks(tokens, count, "tokenizer.model");
}

function requireAllRanks(tokens: (Uint8Array | undefined)[], count: number, source: string): Uint8Array[] {
  if (count !== NUM_BASE_TOKENS) {
    const missing = tokens.findIndex((t) => t === undefined);
    throw new VocabularyError(
      `${source}: has ${count} ranks, a Llama 3 vocabulary has ${NUM_BASE_TOKENS} (first missing rank: ${missing})`,
    );
  }
  return tokens as Uint8Array[];
}

/** GPT-2's byte-level alphabet, reversed: unicode character code -> byte. */
function unicodeToByte(): Map<number, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Map<number, number>();
  for (const b of printable) map.set(b, b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) map.set(256 + n++, b);
  }
  return map;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * The fields of a tokenizer.json this reader uses, checked by hand: the project's schema library
 * (zod, ~750 KB bundled) would dominate the tokenizer's cold start on the edge for three fields.
 */
function readVocab(value: unknown): { vocab: Record<string, unknown>; preTokenizer: unknown } {
  if (!isRecord(value)) throw new VocabularyError("tokenizer.json: (root): expected an object");
  const model = value.model;
  if (!isRecord(model)) throw new VocabularyError("tokenizer.json: model: expected an object");
  if (model.type !== "BPE") {
    throw new VocabularyError(`tokenizer.json: model.type: expected "BPE", got ${JSON.stringify(model.type)}`);
  }
  if (!isRecord(model.vocab)) throw new VocabularyError("tokenizer.json: model.vocab: expected an object");
  return { vocab: model.vocab, preTokenizer: value.pre_tokenizer };
}

/** Every `Split` regex in a pre_tokenizer tree. */
function splitPatterns(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const child of node) splitPatterns(child, found);
  } else if (node !== null && typeof node === "object") {
    const record = node as Record<string, unknown>;
    const pattern = record.pattern as Record<string, unknown> | undefined;
    if (record.type === "Split" && pattern && typeof pattern.Regex === "string") found.push(pattern.Regex);
    for (const value of Object.values(record)) splitPatterns(value, found);
  }
  return found;
}

/**
 * Reads the BPE ranks from a Hugging Face `tokenizer.json` (text or parsed). Only the byte-level
 * vocabulary is used: the ids are the ranks and tiktoken's rank-based merging applies, so `merges`
 * are not needed. Special-token names come from llama-models HEAD, not from `added_tokens`.
 */
export function parseHuggingFaceTokenizerJson(json: string | object): Uint8Array[] {
  let value: unknown = json;
  if (typeof json === "string") {
    try {
      value = JSON.parse(json);
    } catch (error) {
      throw new VocabularyError(`tokenizer.json: not valid JSON (${(error as Error).message})`);
    }
  }
  const { vocab, preTokenizer } = readVocab(value);
  for (const pattern of splitPatterns(preTokenizer)) {
    if (pattern !== LLAMA3_SPLIT_PATTERN) {
      throw new VocabularyError(`tokenizer.json: pre_tokenizer split pattern is not Llama 3's: ${JSON.stringify(pattern)}`);
    }
  }
  const toByte = unicodeToByte();
  const tokens: (Uint8Array | undefined)[] = new Array(NUM_BASE_TOKENS);
  let count = 0;
  for (const [text, id] of Object.entries(vocab)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= NUM_BASE_TOKENS) {
      throw new VocabularyError(
        `tokenizer.json: model.vocab[${JSON.stringify(text)}] = ${JSON.stringify(id)} is not an id in 0..${NUM_BASE_TOKENS - 1}`,
      );
    }
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) {
      const b = toByte.get(text.charCodeAt(i));
      if (b === undefined) {
        throw new VocabularyError(`tokenizer.json: model.vocab entry ${JSON.stringify(text)} is not byte-level BPE`);
      }
      bytes[i] = b;
    }
    if (tokens[id] !== undefined) throw new VocabularyError(`tokenizer.json: model.vocab id ${id} appears twice`);
    tokens[id] = bytes;
    count++;
  }
  return requireAllRanks(tokens, count, "tokenizer.json");
}
