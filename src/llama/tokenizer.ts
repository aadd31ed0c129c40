/**
 * The Llama 3 tokenizer (llama-models HEAD `models/llama3/tokenizer.py` on tiktoken), reimplemented
 * exactly: same ids for every input, including the long-input splitting and special-token handling.
 *
 * Pipeline of `encode`: UTF-8 (lone surrogates become U+FFFD, as tiktoken does) → long-input cuts
 * (400,000 code points; same-class runs over 25,000) → per cut, the special-token check and split →
 * pre-tokenizer pieces (`pretokenize.ts`) → BPE per piece (`bpe.ts`) over the binary rank table
 * (`rank-table.ts`).
 */

import { BytePairEncoder } from "./bpe.js";
import { longInputCuts, MAX_NO_WHITESPACES_CHARS } from "./long-input.js";
import { pieceEnd } from "./pretokenize.js";
import { PACKED_MAX_LENGTH, RankTable, RankTableFormatError } from "./rank-table.js";
import {
  BOS_ID,
  EOM_ID,
  EOS_ID,
  EOT_ID,
  FINETUNE_RIGHT_PAD_ID,
  NUM_BASE_TOKENS,
  PYTHON_TAG_ID,
  SPECIAL_TOKEN_NAMES,
  STOP_TOKENS,
  VOCAB_SIZE,
} from "./special-tokens.js";
import { StreamDecoder } from "./stream-decoder.js";
import { parseHuggingFaceTokenizerJson, parseTiktokenBpe, VocabularyError } from "./vocab-sources.js";

/** `"all"` or a list of special-token strings such as `"<|eot_id|>"`. */
export type SpecialTokenSet = "all" | readonly string[];

export interface EncodeOptions {
  /** Prepend `<|begin_of_text|>` (128000). Required, as in the reference. */
  bos: boolean;
  /** Append `<|end_of_text|>` (128001, not eot). Required, as in the reference. */
  eos: boolean;
  /** Special-token texts to encode as their special id. Default: none (they are plain text). */
  allowedSpecial?: SpecialTokenSet;
  /** Special-token texts whose presence throws. Default: none. `"all"` means all that are not allowed. */
  disallowedSpecial?: SpecialTokenSet;
}

/** Thrown by `encode` when the text contains a disallowed special token (tiktoken's ValueError). */
export class DisallowedSpecialTokenError extends Error {
  override name = "DisallowedSpecialTokenError";
  readonly token: string;
  constructor(token: string) {
    super(
      `Encountered text corresponding to disallowed special token ${JSON.stringify(token)}. ` +
        `To encode it as the special token, pass it in allowedSpecial (e.g. allowedSpecial: [${JSON.stringify(token)}]); ` +
        `to encode it as plain text, leave it out of disallowedSpecial (the default disallows nothing).`,
    );
    this.token = token;
  }
}

// Local copies of hot constants: some module loaders (vitest, tsx) turn imported bindings into getters.
const BASE = NUM_BASE_TOKENS;
const VOCAB = VOCAB_SIZE;

const utf8Encoder = new TextEncoder();
const SPECIAL_IDS: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(SPECIAL_TOKEN_NAMES.map((name, i) => [name, NUM_BASE_TOKENS + i])),
);
const SPECIAL_ID_BY_NAME: ReadonlyMap<string, number> = new Map(Object.entries(SPECIAL_IDS));
const SPECIAL_BYTES: readonly Uint8Array[] = SPECIAL_TOKEN_NAMES.map((name) => utf8Encoder.encode(name));
const MAX_SPECIAL_LENGTH = Math.max(...SPECIAL_TOKEN_NAMES.map((name) => name.length));
/** Inputs longer than this (in UTF-8 bytes, worst case) get their own buffer instead of the reused one. */
const SCRATCH_RETAIN_BYTES = 1 << 20;
/** Marks "no special tokens" so the common path skips searching for them. */
const NO_SPECIALS: ReadonlySet<number> = new Set();

export class Tokenizer {
  readonly specialTokens: Readonly<Record<string, number>> = SPECIAL_IDS;
  readonly stopTokens: readonly number[] = STOP_TOKENS;
  readonly bosId = BOS_ID;
  readonly eosId = EOS_ID;
  readonly eotId = EOT_ID;
  readonly eomId = EOM_ID;
  readonly pythonTagId = PYTHON_TAG_ID;
  readonly padId = FINETUNE_RIGHT_PAD_ID;
  readonly vocabSize = VOCAB_SIZE;

  private readonly table: RankTable;
  private readonly bpe: BytePairEncoder;
  /** Rank of each single byte: pieces of one byte skip the hash table. */
  private readonly byteRanks: Int32Array;
  private readonly utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  private scratch = new Uint8Array(1024);

  private constructor(table: RankTable) {
    if (table.tokenCount !== NUM_BASE_TOKENS) {
      throw new VocabularyError(`vocabulary has ${table.tokenCount} tokens, a Llama 3 vocabulary has ${NUM_BASE_TOKENS}`);
    }
    // BPE starts from single bytes, so every byte must be a token.
    this.byteRanks = table.singleByteRanks();
    const missing = this.byteRanks.indexOf(-1);
    if (missing !== -1) throw new VocabularyError(`vocabulary lacks the single byte 0x${missing.toString(16)}`);
    this.table = table;
    this.bpe = new BytePairEncoder(table, this.byteRanks);
  }

  /**
   * Wraps the compact edge asset (`scripts/build-tokenizer.ts`, or `toData()`): no parsing, and no copy
   * unless the bytes are not 4-byte aligned, so the caller must not modify them afterwards.
   */
  static fromData(asset: ArrayBuffer | Uint8Array): Tokenizer {
    if (asset instanceof ArrayBuffer) return new Tokenizer(RankTable.fromBytes(new Uint8Array(asset)));
    if (asset instanceof Uint8Array) return new Tokenizer(RankTable.fromBytes(asset));
    throw new TypeError("Tokenizer.fromData: asset must be an ArrayBuffer or a Uint8Array");
  }

  /** Builds from the text of a tiktoken-format `tokenizer.model`. */
  static fromTiktokenModel(text: string): Tokenizer {
    if (typeof text !== "string") throw new TypeError("Tokenizer.fromTiktokenModel: text must be a string");
    return new Tokenizer(RankTable.build(parseTiktokenBpe(text)));
  }

  /** Builds from a Hugging Face `tokenizer.json` (text or parsed object). */
  static fromHuggingFaceJson(json: string | object): Tokenizer {
    return new Tokenizer(RankTable.build(parseHuggingFaceTokenizerJson(json)));
  }

  /**
   * Node only: loads an edge asset, a tiktoken `tokenizer.model` or a Hugging Face `tokenizer.json`,
   * recognised by content.
   */
  static async fromFile(path: string): Promise<Tokenizer> {
    const { readFile } = await import("node:fs/promises");
    const data = new Uint8Array(await readFile(path));
    if (RankTable.hasMagic(data)) return Tokenizer.fromData(data);
    const text = new TextDecoder("utf-8").decode(data);
    const first = text.trimStart()[0];
    if (first === "{") return Tokenizer.fromHuggingFaceJson(text);
    return Tokenizer.fromTiktokenModel(text);
  }

  /** The compact edge asset for this vocabulary (a copy). */
  toData(): Uint8Array {
    return this.table.toBytes().slice();
  }

  /** Encodes `text` like the reference `Tokenizer.encode(s, bos=, eos=, allowed_special=, disallowed_special=)`. */
  encode(text: string, options: EncodeOptions): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: text must be a string, got ${describe(text)}`);
    if (options === null || typeof options !== "object") {
      throw new TypeError("encode: options { bos, eos } are required (as in the reference)");
    }
    if (typeof options.bos !== "boolean") throw new TypeError(`encode: options.bos must be a boolean, got ${describe(options.bos)}`);
    if (typeof options.eos !== "boolean") throw new TypeError(`encode: options.eos must be a boolean, got ${describe(options.eos)}`);
    const allowed = resolveSpecialSet(options.allowedSpecial, "allowedSpecial");
    let disallowed: ReadonlySet<number>;
    if (options.disallowedSpecial === "all") {
      // tiktoken: "all" means every special token that is not allowed.
      disallowed =
        allowed.size === 0 ? ALL_SPECIAL_IDS : new Set([...ALL_SPECIAL_IDS].filter((id) => !allowed.has(id)));
      if (disallowed.size === 0) disallowed = NO_SPECIALS;
    } else {
      disallowed = resolveSpecialSet(options.disallowedSpecial, "disallowedSpecial");
    }

    const out: number[] = [];
    if (options.bos) out.push(BOS_ID);
    const bytes = this.utf8(text);
    if (text.length <= MAX_NO_WHITESPACES_CHARS) {
      // At most 25,000 code points: the reference makes no cut.
      this.encodeCut(bytes, 0, bytes.length, allowed, disallowed, out);
    } else {
      const cuts = longInputCuts(bytes, 0, bytes.length);
      for (let i = 0; i + 1 < cuts.length; i++) this.encodeCut(bytes, cuts[i], cuts[i + 1], allowed, disallowed, out);
    }
    if (options.eos) out.push(EOS_ID);
    return out;
  }

  /**
   * `text` as UTF-8 (lone surrogates become U+FFFD, as tiktoken does) in a reused buffer: encode is
   * often called for short strings (chat headers, roles), where a fresh allocation per call shows.
   */
  private utf8(text: string): Uint8Array {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    const needed = 3 * text.length;
    if (needed > SCRATCH_RETAIN_BYTES) return utf8Encoder.encode(text);
    if (this.scratch.length < needed) this.scratch = new Uint8Array(Math.max(needed, 2 * this.scratch.length));
    const { written } = utf8Encoder.encodeInto(text, this.scratch);
    return this.scratch.subarray(0, written);
  }

  /** One piece of the long-input split: what the reference passes to one tiktoken `encode` call. */
  private encodeCut(
    bytes: Uint8Array,
    start: number,
    end: number,
    allowed: ReadonlySet<number>,
    disallowed: ReadonlySet<number>,
    out: number[],
  ): void {
    if (disallowed.size !== 0) {
      const found = findSpecial(bytes, start, end, disallowed);
      if (found) throw new DisallowedSpecialTokenError(SPECIAL_TOKEN_NAMES[found.id - BASE]);
    }
    if (allowed.size === 0) {
      this.encodeOrdinary(bytes, start, end, out);
      return;
    }
    let pos = start;
    for (;;) {
      const found = findSpecial(bytes, pos, end, allowed);
      if (!found) break;
      this.encodeOrdinary(bytes, pos, found.at, out);
      out.push(found.id);
      pos = found.at + SPECIAL_BYTES[found.id - BASE].length;
    }
    this.encodeOrdinary(bytes, pos, end, out);
  }

  /** Text without special tokens: pre-tokenizer pieces, then BPE. */
  private encodeOrdinary(bytes: Uint8Array, start: number, end: number, out: number[]): void {
    const bpe = this.bpe;
    const byteRanks = this.byteRanks;
    let pos = start;
    while (pos < end) {
      const next = pieceEnd(bytes, pos, end);
      if (next - pos === 1) out.push(byteRanks[bytes[pos]]);
      else bpe.encode(bytes, pos, next, out);
      pos = next;
    }
  }

  /** Decodes ids to text: the concatenated bytes as UTF-8, invalid sequences as U+FFFD. */
  decode(ids: readonly number[]): string {
    return this.utf8Decoder.decode(this.decodeBytes(ids));
  }

  /** The concatenated bytes of `ids` (special tokens give their text). */
  decodeBytes(ids: readonly number[]): Uint8Array {
    if (!Array.isArray(ids)) throw new TypeError(`decode: ids must be an array of token ids, got ${describe(ids)}`);
    const { offsets, packed, blob, maxTokenLength } = this.table;
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      // (id >>> 0) === id holds only for integers 0..2^32-1, so this also rejects non-numbers.
      if (id < BASE && id >>> 0 === id) {
        let length = packed[2 * id + 1] >>> 24;
        if (length === 0) {
          length = offsets[id + 1] - offsets[id];
          // Only a corrupt asset can fail this (fromData checks the structure, not every offset).
          if (length <= PACKED_MAX_LENGTH || length > maxTokenLength) {
            throw new RankTableFormatError(`corrupt rank table: token ${id} has length ${length}`);
          }
        }
        total += length;
      } else if (id < VOCAB && id >>> 0 === id) {
        total += SPECIAL_BYTES[id - BASE].length;
      } else {
        throw new RangeError(`decode: ids[${i}] = ${describe(id)} is not a token id (0..${VOCAB - 1})`);
      }
    }
    // Short tokens are written as two whole words, so leave room for the last one's overhang.
    const result = new Uint8Array(total + 8);
    const view = new DataView(result.buffer);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < BASE) {
        const high = packed[2 * id + 1];
        const length = high >>> 24;
        if (length !== 0) {
          view.setUint32(at, packed[2 * id], true);
          view.setUint32(at + 4, high, true);
          at += length;
        } else {
          const end = offsets[id + 1];
          for (let p = offsets[id]; p < end; p++) result[at++] = blob[p];
        }
      } else {
        const special = SPECIAL_BYTES[id - BASE];
        result.set(special, at);
        at += special.length;
      }
    }
    return result.subarray(0, total);
  }

  /** The bytes of one token (a copy). */
  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw new RangeError(`tokenBytes: ${describe(id)} is not a token id (0..${VOCAB_SIZE - 1})`);
    }
    if (id >= NUM_BASE_TOKENS) return SPECIAL_BYTES[id - NUM_BASE_TOKENS].slice();
    return this.table.tokenBytes(id);
  }

  /** A decoder that turns ids into text one token at a time (see `StreamDecoder`). */
  createStreamDecoder(): StreamDecoder {
    return new StreamDecoder(this);
  }
}

/**
 * The leftmost special token in `bytes[start, end)` whose id is in `ids`: its offset and id. Every
 * special token is `<|name|>` with no `|` in the name, so at a `<|` only the text up to the next `|>`
 * can match: one lookup per candidate finds what the regex alternation of the tokens would.
 */
function findSpecial(
  bytes: Uint8Array,
  start: number,
  end: number,
  ids: ReadonlySet<number>,
): { at: number; id: number } | undefined {
  for (let p = bytes.indexOf(0x3c, start); p !== -1 && p + 1 < end; p = bytes.indexOf(0x3c, p + 1)) {
    if (bytes[p + 1] !== 0x7c) continue;
    const limit = Math.min(end, p + MAX_SPECIAL_LENGTH);
    for (let q = p + 2; q + 1 < limit; q++) {
      if (bytes[q] === 0x7c) {
        if (bytes[q + 1] !== 0x3e) break;
        const id = SPECIAL_ID_BY_NAME.get(String.fromCharCode(...bytes.subarray(p, q + 2)));
        if (id !== undefined && ids.has(id)) return { at: p, id };
        break;
      }
    }
  }
  return undefined;
}

function resolveSpecialSet(set: SpecialTokenSet | undefined, field: string): ReadonlySet<number> {
  if (set === undefined) return NO_SPECIALS;
  if (set === "all") return ALL_SPECIAL_IDS;
  // A Set is what tiktoken takes in Python; accept it too.
  if ((set as unknown) instanceof Set) set = [...(set as unknown as Set<string>)];
  if (!Array.isArray(set)) throw new TypeError(`encode: options.${field} must be "all" or an array of special-token strings`);
  if (set.length === 0) return NO_SPECIALS;
  const ids = new Set<number>();
  for (let i = 0; i < set.length; i++) {
    const id = typeof set[i] === "string" ? SPECIAL_ID_BY_NAME.get(set[i]) : undefined;
    if (id === undefined) {
      throw new TypeError(`encode: options.${field}[${i}] = ${describe(set[i])} is not a Llama 3 special token`);
    }
    ids.add(id);
  }
  return ids;
}

const ALL_SPECIAL_IDS: ReadonlySet<number> = new Set(SPECIAL_TOKEN_NAMES.map((_, i) => NUM_BASE_TOKENS + i));

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  return Array.isArray(value) ? "an array" : typeof value;
}
