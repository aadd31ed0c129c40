/**
 * vitest globalSetup for the job tests (Node side): starts the real webhook receiver and generates the
 * signing and inbound-hook secrets of this run, handed to the Worker as bindings (`jobBindings`) and to the
 * tests, which verify deliveries with them.
 */
import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { startReceiver } from "./receiver.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Worker bindings of the job machinery for this run (vars and secrets). */
    jobBindings: Record<string, string>;
  }
}

const whsec = () => `whsec_${randomBytes(32).toString("base64")}`;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const receiver = await startReceiver();
  const signing = { current: whsec(), previous: whsec() };
  const hookSecrets = { standard: whsec(), github: randomBytes(20).toString("hex") };
  const destination = { url: `${receiver.url}/hook/hooks`, secret_id: "default" };
  project.provide("jobBindings", {
    RECEIVER_URL: receiver.url,
    // Development mode admits the loopback receiver; the SSRF tests switch it off per request.
    WEBHOOK_DEV_MODE: "true",
    // One-second back-off (the queue's delay unit), four delivery attempts: retry tests take seconds.
    WEBHOOK_RETRY_BASE_MS: "1000",
    WEBHOOK_RETRY_MAX_MS: "1000",
    WEBHOOK_MAX_ATTEMPTS: "4",
    WEBHOOK_TIMEOUT_MS: "1500",
    WEBHOOK_MAX_RESPONSE_BYTES: "1024",
    JOB_GENERATION_ATTEMPTS: "3",
    // Two secrets on the default key: every delivery carries both signatures (rotation).
    WEBHOOK_SECRETS: JSON.stringify({ default: { secrets: [signing.current, signing.previous], owners: ["*"] } }),
    WEBHOOK_SIGNING_CURRENT: signing.current,
    WEBHOOK_SIGNING_PREVIOUS: signing.previous,
    HOOK_SECRET_STANDARD: hookSecrets.standard,
    HOOK_SECRET_GITHUB: hookSecrets.github,
    WEBHOOK_HOOKS: JSON.stringify({
      "std-summary": {
        verify: "standard-webhooks",
        secret: "HOOK_SECRET_STANDARD",
        replay_window_s: 120,
        template: "Summarize the order {{ payload.order.id }} for {{ payload.order.customer }}.",
        system: "You write one-line summaries.",
        request: { max_tokens: 4, temperature: 0 },
        destination: { ...destination, url: `${receiver.url}/hook/hooks-std` },
      },
      "gh-push": {
        verify: "github",
        secret: "HOOK_SECRET_GITHUB",
        template: "Describe the push to {{ payload.repository.full_name }}: {{ payload.head_commit.message }}",
        request: { max_tokens: 4, temperature: 0 },
        destination: { ...destination, url: `${receiver.url}/hook/hooks-gh` },
      },
    }),
  });
  return () => receiver.close();
}
