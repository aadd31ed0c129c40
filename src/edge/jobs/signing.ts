/**
 * Standard Webhooks signatures, made with the maintained `standardwebhooks` package: HMAC-SHA256 over
 * `${webhook-id}.${webhook-timestamp}.${body}` with a `whsec_` key, written `v1,<base64>`. Every configured
 * secret of a key signs, space-separated, so a receiver rotating its secret accepts deliveries throughout.
 */
import { Webhook } from "standardwebhooks";

const signers = new Map<string, Webhook>();

function signer(secret: string): Webhook {
  let webhook = signers.get(secret);
  if (webhook === undefined) {
    webhook = new Webhook(secret);
    signers.set(secret, webhook);
  }
  return webhook;
}

export interface SignedHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/** The three Standard Webhooks headers for one delivery attempt at `at`. */
export function signDelivery(secrets: readonly string[], webhookId: string, at: Date, body: string): SignedHeaders {
  if (secrets.length === 0) throw new Error("signDelivery: no secrets");
  return {
    "webhook-id": webhookId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": secrets.map((secret) => signer(secret).sign(webhookId, at, body)).join(" "),
  };
}
