/**
 * Verifying a webhook another system sends to `POST /v1/hooks/:name`, over the raw body as received:
 *
 * - Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`, checked by the
 *   `standardwebhooks` package after our own replay-window check (the package's window is fixed at 5
 *   minutes; ours may be shorter). The hook's secret may list several `whsec_` secrets (comma-separated)
 *   while the sender rotates.
 * - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, compared in constant time by
 *   WebCrypto. GitHub signs no timestamp, so there is no replay window; a replayed delivery carries the
 *   same `X-GitHub-Delivery` id and lands on the job it already started (the job id derives from it).
 *
 * Every failure is a 401 that says what was wrong without saying anything about the secret.
 */
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { ApiError, badRequest } from "../errors.js";
import type { InboundHook } from "./config.js";

export interface VerifiedDelivery {
  /** The sender's id for this delivery: the idempotency key of the job it starts. */
  deliveryId: string;
  event: string | null;
}

const unauthorized = (message: string) => new ApiError(401, message, "authentication_error", "invalid_signature");

const DELIVERY_ID = /^[\x21-\x7e]{1,256}$/;

function verifyStandardWebhook(hook: InboundHook, secrets: string[], body: string, headers: Headers, nowS: number): VerifiedDelivery {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signature = headers.get("webhook-signature");
  if (id === null || timestamp === null || signature === null) {
    throw unauthorized("missing Standard Webhooks headers: webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (!DELIVERY_ID.test(id)) throw badRequest("webhook-id header: must be 1-256 printable ASCII characters", "webhook-id");
  if (!/^\d{1,12}$/.test(timestamp)) throw unauthorized("webhook-timestamp must be integer Unix seconds");
  const age = nowS - Number(timestamp);
  if (Math.abs(age) > hook.replayWindowS) {
    throw unauthorized(`webhook-timestamp is ${Math.abs(age)} s ${age > 0 ? "old" : "in the future"}; the replay window is ${hook.replayWindowS} s`);
  }
  for (const secret of secrets) {
    try {
      new Webhook(secret).verify(body, { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature }, { jsonParse: false });
      return { deliveryId: id, event: null };
    } catch (e) {
      if (!(e instanceof WebhookVerificationError)) throw e;
    }
  }
  throw unauthorized("webhook-signature does not match the body");
}

const encoder = new TextEncoder();

function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(new ArrayBuffer(hex.length / 2));
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

async function verifyGitHub(secrets: string[], body: string, headers: Headers): Promise<VerifiedDelivery> {
  const header = headers.get("x-hub-signature-256");
  if (header === null) throw unauthorized("missing X-Hub-Signature-256 header");
  const match = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (match === null) throw unauthorized("X-Hub-Signature-256 must be sha256=<64 hex digits>");
  const delivery = headers.get("x-github-delivery");
  if (delivery === null || !DELIVERY_ID.test(delivery)) throw badRequest("X-GitHub-Delivery header: required (the delivery's GUID)", "x-github-delivery");
  const signature = hexToBytes(match[1]!.toLowerCase());
  const data = encoder.encode(body);
  for (const secret of secrets) {
    const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    // crypto.subtle.verify compares in constant time.
    if (await crypto.subtle.verify("HMAC", key, signature, data)) return { deliveryId: delivery, event: headers.get("x-github-event") };
  }
  throw unauthorized("X-Hub-Signature-256 does not match the body");
}

/**
 * Verifies one inbound delivery. `secretValue` is the hook's secret binding (comma-separated secrets);
 * `body` is the raw body text.
 */
export async function verifyInbound(hook: InboundHook, secretValue: string, body: string, headers: Headers, nowMs = Date.now()): Promise<VerifiedDelivery> {
  const secrets = secretValue
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (secrets.length === 0) throw new Error(`hook ${hook.name}: its secret ${hook.secretBinding} is empty`);
  return hook.verify === "github" ? verifyGitHub(secrets, body, headers) : verifyStandardWebhook(hook, secrets, body, headers, Math.floor(nowMs / 1000));
}
