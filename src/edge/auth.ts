/**
 * API keys and per-key rate limits. Keys are only ever handled as SHA-256 digests: the store holds digests,
 * lookups use digests, logs and rate-limit keys use a short prefix of the digest. The raw key lives only in
 * the request header.
 */
import type { EdgeConfig } from "./config.js";
import { ApiError } from "./errors.js";

/** What the gateway knows about the caller after authentication. */
export interface Principal {
  /** Full SHA-256 hex of the key: the rate-limit and session-namespace key. Never logged in full. */
  keyHash: string;
  /** First 12 hex digits of the digest: safe to log. */
  keyId: string;
  /** Display name from the key record, if any. */
  name: string | null;
}

/** A record in the key store (KV value under `apikey:<sha256 hex>`). */
export interface ApiKeyRecord {
  name?: string;
  disabled?: boolean;
}

export interface KeyStore {
  /** The record for a key digest, or null if the key is unknown. */
  lookup(keyHash: string): Promise<ApiKeyRecord | null>;
}

export interface RateLimiter {
  /** true if the caller may proceed. */
  allow(key: string): Promise<boolean>;
}

export const KV_KEY_PREFIX = "apikey:";

const encoder = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** The key from `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key`. */
export function presentedKey(request: Request): string | null {
  const authorization = request.headers.get("authorization");
  if (authorization !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1]! : null;
  }
  return request.headers.get("x-api-key");
}

const ANONYMOUS: Principal = { keyHash: "anonymous", keyId: "anonymous", name: null };

/** Resolves the caller or throws 401; with `auth = "off"` every caller is the anonymous principal. */
export async function authenticate(request: Request, config: EdgeConfig, keys: KeyStore | null): Promise<Principal> {
  if (config.auth === "off") return ANONYMOUS;
  const key = presentedKey(request);
  if (key === null || key === "") {
    throw new ApiError(
      401,
      "missing API key: send it as 'Authorization: Bearer <key>'",
      "authentication_error",
      "missing_api_key",
    );
  }
  const keyHash = await sha256Hex(key);
  const keyId = keyHash.slice(0, 12);
  // Digest comparison: equal digests need equal keys, and the digest reveals nothing about a key's prefix.
  if (config.apiKeyHashes.includes(keyHash)) return { keyHash, keyId, name: null };
  const record = keys ? await keys.lookup(keyHash) : null;
  if (record === null) throw new ApiError(401, "invalid API key", "authentication_error", "invalid_api_key");
  if (record.disabled === true) {
    throw new ApiError(403, "this API key is disabled", "permission_error", "api_key_disabled");
  }
  return { keyHash, keyId, name: record.name ?? null };
}

export async function enforceRateLimit(principal: Principal, limiter: RateLimiter | null): Promise<void> {
  if (limiter === null) return;
  if (!(await limiter.allow(principal.keyHash))) {
    throw new ApiError(
      429,
      "rate limit exceeded for this API key; retry later",
      "rate_limit_error",
      "rate_limit_exceeded",
      null,
      { "retry-after": "10" },
    );
  }
}
