/**
 * An inbound hook's prompt: the operator's Jinja template (WEBHOOK_HOOKS) rendered with the verified
 * payload. Rendering uses `@huggingface/jinja`, an interpreter with no access to the runtime, so a template
 * can only read the values given to it: `payload` (the parsed JSON body), `hook` (its name) and `event`
 * (X-GitHub-Event, or the payload's `type` for Standard Webhooks). Values print the JavaScript way
 * (`{{ payload.ok }}` → `true`; use `| tojson` for objects). The rendered text becomes the user message,
 * where the text core keeps special-token strings from acting as control tokens.
 */
import { Template } from "@huggingface/jinja";

const parsed = new Map<string, Template>();

export class TemplateError extends Error {
  override name = "TemplateError";
}

export interface TemplateContext {
  payload: unknown;
  hook: string;
  event: string | null;
}

/** Renders `template`; throws {@link TemplateError} with the interpreter's reason. */
export function renderPrompt(template: string, context: TemplateContext): string {
  let compiled = parsed.get(template);
  try {
    if (compiled === undefined) {
      compiled = new Template(template);
      parsed.set(template, compiled);
    }
    return compiled.render({ ...context });
  } catch (e) {
    throw new TemplateError(e instanceof Error ? e.message : String(e));
  }
}
