/**
 * The Llama 3.1 chat format of llama-models HEAD (`models/llama3/chat_format.py`, llama-reference.md §2):
 * dialogs to token ids, and completions back to assistant messages with tool calls.
 *
 * Only this class inserts special token ids. Message text is always encoded with the tokenizer's
 * default special handling, so special-token spellings in user content stay plain text and can never
 * produce ids ≥ 128000.
 */

import { BOS_ID, END_HEADER_ID, EOM_ID, EOT_ID, PYTHON_TAG_ID, START_HEADER_ID } from "./special-tokens.js";
import type { Tokenizer } from "./tokenizer.js";
import { encodeToolCallText, extractToolCall, type ToolCall, type ToolPromptFormat } from "./tool-calls.js";

export type Role = "system" | "user" | "assistant" | "tool";
export type StopReason = "end_of_turn" | "end_of_message" | "out_of_tokens";

export interface TextContentItem {
  type: "text";
  text: string;
}

/** A string is encoded whole; list items are encoded one by one (never merged across items). */
export type MessageContent = string | TextContentItem[];

export interface Message {
  role: Role;
  content: MessageContent;
  /** Retrieval context appended to a user message after a blank line. */
  context?: MessageContent | null;
  stopReason?: StopReason | null;
  toolCalls?: ToolCall[];
}

export interface AssistantMessage {
  role: "assistant";
  content: string;
  stopReason: StopReason;
  toolCalls: ToolCall[];
}

/** What the chat format needs from a tokenizer. */
export type ChatTokenizer = Pick<Tokenizer, "encode" | "decode">;

const ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n";
const PYTHON_TAG = "<|python_tag|>";
const EOT = "<|eot_id|>";
const EOM = "<|eom_id|>";

/** Python `s.strip(" ")`: ASCII spaces only. */
function stripSpaces(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) === 0x20) start++;
  while (end > start && s.charCodeAt(end - 1) === 0x20) end--;
  return s.slice(start, end);
}

export class ChatFormat {
  constructor(readonly tokenizer: ChatTokenizer) {}

  private text(s: string): number[] {
    return this.tokenizer.encode(s, { bos: false, eos: false });
  }

  private content(content: MessageContent, out: number[]): void {
    if (typeof content === "string") {
      out.push(...this.text(content));
      return;
    }
    for (const item of content) out.push(...this.text(item.text));
  }

  /** `<|start_header_id|>ROLE<|end_header_id|>\n\n`, with the tool role spelled `ipython`. */
  encodeHeader(role: Role): number[] {
    return [START_HEADER_ID, ...this.text(role === "tool" ? "ipython" : role), END_HEADER_ID, ...this.text("\n\n")];
  }

  /**
   * One message: header, python_tag when an assistant's first tool call is code_interpreter, the
   * content (not stripped), a user's context, an assistant's serialised tool calls, then eom for an
   * assistant message that stopped at end_of_message and eot otherwise.
   */
  encodeMessage(message: Message, toolPromptFormat: ToolPromptFormat = "json"): number[] {
    const tokens = this.encodeHeader(message.role);
    const toolCalls = message.toolCalls ?? [];
    const isAssistant = message.role === "assistant";
    if (isAssistant && toolCalls.length > 0 && toolCalls[0].toolName === "code_interpreter") tokens.push(PYTHON_TAG_ID);
    this.content(message.content, tokens);
    if (message.role === "user" && message.context !== undefined && message.context !== null) {
      tokens.push(...this.text("\n\n"));
      this.content(message.context, tokens);
    }
    if (isAssistant) {
      for (const call of toolCalls) {
        const text = encodeToolCallText(call, toolPromptFormat);
        if (text !== null) tokens.push(...this.text(text));
      }
    }
    tokens.push(isAssistant && message.stopReason === "end_of_message" ? EOM_ID : EOT_ID);
    return tokens;
  }

  /** `<|begin_of_text|>`, every message, then the assistant header for the model to complete. */
  encodeDialogPrompt(messages: readonly Message[], toolPromptFormat: ToolPromptFormat = "json"): number[] {
    const tokens = [BOS_ID];
    for (const message of messages) tokens.push(...this.encodeMessage(message, toolPromptFormat));
    tokens.push(...this.encodeHeader("assistant"));
    return tokens;
  }

  /** Decodes generated ids (special tokens included) and parses them like {@link decodeAssistantMessageFromContent}. */
  decodeAssistantMessage(ids: readonly number[], stopReason: StopReason): AssistantMessage {
    return this.decodeAssistantMessageFromContent(this.tokenizer.decode(ids), stopReason);
  }

  /**
   * Parses a completion (llama-reference.md §2.6): strips ASCII spaces, an assistant header, one
   * python_tag and one eot/eom suffix (which sets the stop reason), then finds at most one tool call —
   * function tag > JSON > Python list > `NAME.call(query="…")` > bare python_tag code. When a call is
   * found the content becomes "". Throws {@link ChatFormatError} where the reference raises.
   */
  decodeAssistantMessageFromContent(content: string, stopReason: StopReason): AssistantMessage {
    let text = stripSpaces(content);
    if (text.startsWith(ASSISTANT_HEADER)) text = text.slice(ASSISTANT_HEADER.length);
    const ipython = text.startsWith(PYTHON_TAG);
    if (ipython) text = text.slice(PYTHON_TAG.length);
    let stop = stopReason;
    if (text.endsWith(EOT)) {
      text = text.slice(0, -EOT.length);
      stop = "end_of_turn";
    } else if (text.endsWith(EOM)) {
      text = text.slice(0, -EOM.length);
      stop = "end_of_message";
    }
    const call = extractToolCall(text, ipython);
    return { role: "assistant", content: call ? "" : text, stopReason: stop, toolCalls: call ? [call] : [] };
  }
}
