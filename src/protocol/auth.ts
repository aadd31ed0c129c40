/**
 * Request signing between the edge and a GPU worker: HMAC-SHA256 over the timestamp, method, path with query,
 * and the raw body, on WebCrypto so the same code runs in workerd and in Node.
 *
 *   x-le-timestamp: <unix seconds>
 *   x-le-signature: v1=<base64 HMAC-SHA256(secret, `${timestamp}.${METHOD}.${pathAndQuery}.${rawBody}`)>
 *
 * The timestamp bounds replay to ±300 s. Verification uses `crypto.subtle.verify`, which compares in
 * constant time, so the expected MAC is never compared byte by byte in JS.
 */

export const TIMESTAMP_HEADER = "x-le-timestamp";
export const SIGNATURE_HEADER = "x-le-signature";
export const SIGNATURE_SCHEME = "v1";
export const MAX_CLOCK_SKEW_S = 300;

export interface SignableRequest {
  method: string;
  /** Path and query, e.g. `/v1/generate` or `/v1/requests/r1/cancel?x=1`. */
  path: string;
  /** The exact bytes that will be sent as the body, as a string ("" for none). */
  body: string;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

const encoder = new TextEncoder();

/** The bytes the MAC covers: `${timestamp}.${METHOD}.${pathAndQuery}.${rawBody}`. */
export function signedPayload(timestamp: string, req: SignableRequest): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${timestamp}.${req.method.toUpperCase()}.${req.path}.${req.body}`);
}

/** Imported keys by usage and secret: importing on every request would add a round trip to the crypto pool. */
const keyCache = new Map<string, Promise<CryptoKey>>();
const MAX_CACHED_KEYS = 64;

function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  const cacheKey = `${usage}:${secret}`;
  let key = keyCache.get(cacheKey);
  if (!key) {
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
    keyCache.set(cacheKey, key);
    key.catch(() => keyCache.delete(cacheKey));
  }
  return key;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  try {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

/** Headers to add to a request to the worker. `nowSeconds` is for tests. */
export async function signWorkerRequest(
  secret: string,
  req: SignableRequest,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): Promise<Record<string, string>> {
  if (secret === "") throw new Error("signWorkerRequest: the secret is empty");
  const timestamp = String(Math.floor(nowSeconds));
  const key = await hmacKey(secret, "sign");
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, signedPayload(timestamp, req)));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `${SIGNATURE_SCHEME}=${toBase64(mac)}` };
}

/** Path and query of a request URL, as signed. */
export function pathAndQuery(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

/** A request's signature headers, checked for shape and freshness; the MAC itself is not verified yet. */
export type SignedHeaders = { ok: true; payload: Uint8Array<ArrayBuffer>; mac: Uint8Array<ArrayBuffer> } | { ok: false; reason: string };

/**
 * Reads and checks the signature headers of `request` (present, well formed, timestamp within ±300 s) and
 * builds the payload the MAC must cover. Shared by the WebCrypto verifier below and by runtimes that verify
 * with their own HMAC (the Node worker uses node:crypto, which avoids a trip through the crypto thread pool).
 */
export function readSignedHeaders(request: Request, rawBody: string, nowSeconds: number = Math.floor(Date.now() / 1000)): SignedHeaders {
  const timestamp = request.headers.get(TIMESTAMP_HEADER);
  const signature = request.headers.get(SIGNATURE_HEADER);
  if (timestamp === null || signature === null) {
    return { ok: false, reason: `missing ${timestamp === null ? TIMESTAMP_HEADER : SIGNATURE_HEADER} header` };
  }
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `${TIMESTAMP_HEADER} is not unix seconds` };
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_CLOCK_SKEW_S) {
    return { ok: false, reason: `${TIMESTAMP_HEADER} is more than ${MAX_CLOCK_SKEW_S} s from the worker's clock` };
  }
  const prefix = `${SIGNATURE_SCHEME}=`;
  if (!signature.startsWith(prefix)) return { ok: false, reason: `${SIGNATURE_HEADER} must start with ${prefix}` };
  const mac = fromBase64(signature.slice(prefix.length).trim());
  if (mac === null) return { ok: false, reason: `${SIGNATURE_HEADER} is not base64` };
  const payload = signedPayload(timestamp, { method: request.method, path: pathAndQuery(request.url), body: rawBody });
  return { ok: true, payload, mac };
}

/**
 * Checks the signature headers of `request` against `rawBody` (the body as received, before parsing).
 * `secrets` may hold several values so a secret can be rotated without downtime.
 */
export async function verifyWorkerRequest(
  secrets: string | readonly string[],
  request: Request,
  rawBody: string,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): Promise<VerifyResult> {
  const signed = readSignedHeaders(request, rawBody, nowSeconds);
  if (!signed.ok) return signed;
  for (const secret of typeof secrets === "string" ? [secrets] : secrets) {
    if (secret === "") continue;
    const key = await hmacKey(secret, "verify");
    if (await crypto.subtle.verify("HMAC", key, signed.mac, signed.payload)) return { ok: true };
  }
  return { ok: false, reason: "signature mismatch" };
}
