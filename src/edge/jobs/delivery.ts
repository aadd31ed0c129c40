/**
 * One webhook delivery attempt: a signed POST to the receiver that never follows redirects, gives up after
 * a bounded time (connect, headers and body together), and reads at most a bounded number of response
 * bytes, so a hostile or broken receiver can neither hold a consumer nor fill its memory.
 */
import type { AttemptOutcome } from "./retry-policy.js";
import { signDelivery } from "./signing.js";

export interface DeliveryRequest {
  url: string;
  webhookId: string;
  /** The exact body, identical on every attempt (the signature covers it). */
  body: string;
  secrets: readonly string[];
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface AttemptReport {
  outcome: AttemptOutcome;
  startedAt: number;
  durationMs: number;
  /** The start of the receiver's answer, for the attempt log (at most 256 characters). */
  responseExcerpt: string | null;
}

const EXCERPT_CHARS = 256;

class DeliveryTimeout extends Error {
  override name = "DeliveryTimeout";
}

/** Reads at most `limit` bytes of a body, then cancels the rest. */
async function readBounded(body: ReadableStream<Uint8Array> | null, limit: number): Promise<string> {
  if (body === null) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let received = 0;
  try {
    while (received < limit) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      const room = limit - received;
      const chunk = value.byteLength > room ? value.subarray(0, room) : value;
      received += chunk.byteLength;
      text += decoder.decode(chunk, { stream: true });
    }
    return text + decoder.decode();
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export async function deliverOnce(request: DeliveryRequest): Promise<AttemptReport> {
  const startedAt = Date.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new DeliveryTimeout(`no complete answer within ${request.timeoutMs} ms`)), request.timeoutMs);
  const signed = signDelivery(request.secrets, request.webhookId, new Date(startedAt), request.body);
  const report = (outcome: AttemptOutcome, responseExcerpt: string | null = null): AttemptReport => ({
    outcome,
    startedAt,
    durationMs: Date.now() - startedAt,
    responseExcerpt,
  });
  try {
    const response = await fetch(request.url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "llama-edge-webhooks/1", ...signed },
      body: request.body,
      redirect: "manual",
      signal: abort.signal,
    });
    // The status decides the outcome; a body that stalls or breaks after it only loses the excerpt.
    const text = await readBounded(response.body, request.maxResponseBytes).catch(() => "");
    return report(
      { kind: "response", status: response.status, retryAfter: response.headers.get("retry-after") },
      text === "" ? null : text.slice(0, EXCERPT_CHARS),
    );
  } catch (error) {
    if (abort.signal.aborted) return report({ kind: "timeout" });
    return report({ kind: "network_error", error: error instanceof Error ? error.message : String(error) });
  } finally {
    clearTimeout(timer);
  }
}
