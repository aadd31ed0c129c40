// Package entry: the public API of the text core (src/llama).

export {
  BOS_ID,
  END_HEADER_ID,
  EOM_ID,
  EOS_ID,
  EOT_ID,
  FINETUNE_RIGHT_PAD_ID,
  IMAGE_ID,
  NUM_BASE_TOKENS,
  NUM_SPECIAL_TOKENS,
  PYTHON_TAG_ID,
  SPECIAL_TOKEN_NAMES,
  START_HEADER_ID,
  STEP_ID,
  STOP_TOKENS,
  VOCAB_SIZE,
} from "./llama/special-tokens.js";
export { DisallowedSpecialTokenError, Tokenizer } from "./llama/tokenizer.js";
export type { EncodeOptions, SpecialTokenSet } from "./llama/tokenizer.js";
export { StreamDecoder } from "./llama/stream-decoder.js";
export { VocabularyError } from "./llama/vocab-sources.js";
export { RankTableFormatError } from "./llama/rank-table.js";
export { LLAMA3_SPLIT_PATTERN } from "./llama/split-regex.js";
