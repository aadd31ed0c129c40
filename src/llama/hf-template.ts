/**
 * Rendering a Hugging Face `chat_template` (a model folder's `tokenizer_config.json` template, such as
 * `meta-llama/Llama-3.1-8B-Instruct`'s) the way transformers' `apply_chat_template` does
 * (llama-reference.md §3.3): trim_blocks and lstrip_blocks, loop controls, transformers' `tojson`
 * (`ensure_ascii=False`, key order kept, `indent`), `raise_exception`, `strftime_now`, and the special
 * tokens as variables. Python value semantics come from `jinja-env.ts`.
 *
 * The result is text; tokenize it with `allowedSpecial: "all"` so that the special-token spellings the
 * template writes become special ids.
 */

import { ChatTemplateError, JinjaTemplate } from "./jinja-env.js";

export { ChatTemplateError };

export interface ChatTemplateRenderOptions {
  /** Messages as the template expects them (Hugging Face / OpenAI shape: `role`, `content`, `tool_calls`, …). */
  messages: readonly unknown[];
  /** JSON-schema tool definitions; transformers passes `None` when there are none. */
  tools?: readonly unknown[] | null;
  documents?: readonly unknown[] | null;
  /** Append the assistant header for the model to complete. */
  addGenerationPrompt?: boolean;
  /** Default `<|begin_of_text|>`. */
  bosToken?: string;
  /** Default `<|eot_id|>` (the Llama 3.1 Instruct tokenizer's eos token). */
  eosToken?: string;
  /** The clock behind `strftime_now` (default: now, UTC). */
  now?: () => Date;
  /**
   * Other template variables, passed through like `apply_chat_template(**kwargs)`: for the Llama 3.1
   * template `date_string`, `builtin_tools`, `tools_in_user_message`, `custom_tools`.
   */
  variables?: Record<string, unknown>;
}

const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];

/** Python `datetime.strftime` for the C89 directives, on the UTC calendar (Workers run in UTC). */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const weekday = (date.getUTCDay() + 6) % 7; // Monday = 0
  const hours12 = date.getUTCHours() % 12 === 0 ? 12 : date.getUTCHours() % 12;
  const dayOfYear = Math.floor((date.getTime() - Date.UTC(date.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
  return format.replace(/%(.)/gs, (whole, d: string) => {
    switch (d) {
      case "a":
        return DAYS[weekday].slice(0, 3);
      case "A":
        return DAYS[weekday];
      case "b":
        return MONTHS[date.getUTCMonth()].slice(0, 3);
      case "B":
        return MONTHS[date.getUTCMonth()];
      case "d":
        return pad(date.getUTCDate());
      case "H":
        return pad(date.getUTCHours());
      case "I":
        return pad(hours12);
      case "j":
        return pad(dayOfYear, 3);
      case "m":
        return pad(date.getUTCMonth() + 1);
      case "M":
        return pad(date.getUTCMinutes());
      case "p":
        return date.getUTCHours() < 12 ? "AM" : "PM";
      case "S":
        return pad(date.getUTCSeconds());
      case "y":
        return pad(date.getUTCFullYear() % 100);
      case "Y":
        return String(date.getUTCFullYear());
      case "Z":
        return "UTC";
      case "z":
        return "+0000";
      case "%":
        return "%";
      default:
        return whole;
    }
  });
}

/** A compiled chat template (parse once, render per request). */
export class ChatTemplate {
  private readonly template: JinjaTemplate;

  constructor(source: string) {
    this.template = new JinjaTemplate(source, { trimBlocks: true, lstripBlocks: true, tojson: "transformers" });
  }

  /** The prompt text. Throws {@link ChatTemplateError} for `raise_exception` and rendering errors. */
  render(options: ChatTemplateRenderOptions): string {
    const now = options.now ?? (() => new Date());
    return this.template.render({
      bos_token: options.bosToken ?? "<|begin_of_text|>",
      eos_token: options.eosToken ?? "<|eot_id|>",
      strftime_now: (format: unknown) => strftime(now(), String(format)),
      ...options.variables,
      messages: options.messages,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  }
}

/** One-shot {@link ChatTemplate} rendering. */
export function renderChatTemplate(source: string, options: ChatTemplateRenderOptions): string {
  return new ChatTemplate(source).render(options);
}
