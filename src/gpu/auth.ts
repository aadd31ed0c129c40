/**
 * Request verification in the worker with node:crypto: the same headers and payload as
 * `verifyWorkerRequest` (src/protocol/auth.ts), but a synchronous HMAC. WebCrypto in Node runs each
 * operation on the libuv thread pool, which costs a millisecond or more per request when onnxruntime's
 * threads occupy every core, and this sits on the path to the first token.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { readSignedHeaders, type VerifyResult } from "../protocol/index.js";

export type RequestVerifier = (request: Request, rawBody: string) => VerifyResult;

export function createNodeVerifier(secrets: readonly string[]): RequestVerifier {
  const usable = secrets.filter((s) => s !== "");
  return (request, rawBody) => {
    const signed = readSignedHeaders(request, rawBody);
    if (!signed.ok) return signed;
    for (const secret of usable) {
      const expected = createHmac("sha256", secret).update(signed.payload).digest();
      // Constant-time comparison; lengths are public (a SHA-256 MAC is always 32 bytes).
      if (expected.length === signed.mac.length && timingSafeEqual(expected, signed.mac)) return { ok: true };
    }
    return { ok: false, reason: "signature mismatch" };
  };
}
