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

// Chat format, tool calls, prompts, Hugging Face chat templates, message validation.
export { ChatFormat } from "./llama/chat-format.js";
export type { AssistantMessage, ChatTokenizer, Message, MessageContent, Role, StopReason, TextContentItem } from "./llama/chat-format.js";
export {
  BUILTIN_TOOLS,
  ChatFormatError,
  encodeToolCall,
  isBuiltinTool,
  isValidPythonList,
  maybeExtractBuiltinToolCall,
  maybeExtractCustomToolCall,
  parsePythonListForFunctionCalls,
  TOOL_PROMPT_FORMATS,
} from "./llama/tool-calls.js";
export type { BuiltinTool, PythonErrorKind, ToolCall, ToolPromptFormat } from "./llama/tool-calls.js";
export { dumps as pythonJsonDumps, JSONDecodeError, loads as pythonJsonLoads, PythonFloat } from "./llama/python-json.js";
export type { DumpsOptions, LoadsOptions } from "./llama/python-json.js";
export {
  builtinToolsPrompt,
  formatTodayDate,
  functionTagCustomToolsPrompt,
  jsonCustomToolsPrompt,
  llama31SystemMessages,
  pythonListCustomToolsPrompt,
  systemDefaultPrompt,
  toolResponseMessage,
  toolResponsePrompt,
} from "./llama/prompts.js";
export type { Llama31SystemMessagesOptions, ToolDefinition, ToolParamDefinition, ToolResponse } from "./llama/prompts.js";
export { ChatTemplate, ChatTemplateError, renderChatTemplate } from "./llama/hf-template.js";
export type { ChatTemplateRenderOptions } from "./llama/hf-template.js";
export {
  messageSchema,
  messagesSchema,
  MessageValidationError,
  parseMessage,
  parseMessages,
  parseToolCall,
  parseToolDefinitions,
  parseToolPromptFormat,
  toolCallSchema,
  toolDefinitionSchema,
} from "./llama/messages.js";

// Model core (pure): ModelArgs and presets, weights, seeded RNG, sampling, the reference forward pass and generation.
// Node-only parts (checkpoint files, the ONNX builder, the bundled tokenizer asset) are in "llama-edge/node".
export * from "./model/index.js";
