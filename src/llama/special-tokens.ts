/**
 * The Llama 3 special tokens (ids 128000–128255) as named by llama-models HEAD (the 3.2-era and later
 * names, which 3.1 models use). Everything is keyed by id: only the id meanings are stable across
 * releases, the names of the reserved slots are not (see llama-reference.md §1.4).
 */

/** Number of BPE tokens; their ranks are their ids (0..127999). */
export const NUM_BASE_TOKENS = 128000;
/** Number of special tokens that follow the BPE tokens. */
export const NUM_SPECIAL_TOKENS = 256;
/** Total vocabulary size, `n_words` in the reference. */
export const VOCAB_SIZE = NUM_BASE_TOKENS + NUM_SPECIAL_TOKENS;

const NAMED_SPECIAL_TOKENS = [
  "<|begin_of_text|>",
  "<|end_of_text|>",
  "<|reserved_special_token_0|>",
  "<|reserved_special_token_1|>",
  "<|finetune_right_pad_id|>",
  "<|step_id|>",
  "<|start_header_id|>",
  "<|end_header_id|>",
  "<|eom_id|>",
  "<|eot_id|>",
  "<|python_tag|>",
  "<|image|>",
] as const;

/** Index i holds the text of special token id `NUM_BASE_TOKENS + i`. */
export const SPECIAL_TOKEN_NAMES: readonly string[] = Object.freeze([
  ...NAMED_SPECIAL_TOKENS,
  // HEAD continues the reserved numbering at 2 after the twelve named tokens.
  ...Array.from(
    { length: NUM_SPECIAL_TOKENS - NAMED_SPECIAL_TOKENS.length },
    (_, i) => `<|reserved_special_token_${2 + i}|>`,
  ),
]);

export const BOS_ID = 128000;
export const EOS_ID = 128001;
export const FINETUNE_RIGHT_PAD_ID = 128004;
export const STEP_ID = 128005;
export const START_HEADER_ID = 128006;
export const END_HEADER_ID = 128007;
export const EOM_ID = 128008;
export const EOT_ID = 128009;
export const PYTHON_TAG_ID = 128010;
export const IMAGE_ID = 128011;

/** HEAD's stop tokens: end_of_text, eom, eot (end_of_text was added in the 3.2-era revision). */
export const STOP_TOKENS: readonly number[] = Object.freeze([EOS_ID, EOM_ID, EOT_ID]);

/** True for ids 128000..128255. */
export function isSpecialTokenId(id: number): boolean {
  return id >= NUM_BASE_TOKENS && id < VOCAB_SIZE;
}
