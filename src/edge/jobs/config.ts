/**
 * Settings of webhook-driven generation, read from the Worker's variables and secrets and validated once.
 * Like the gateway's own settings (../config.ts), a bad value is a configuration error that names the
 * variable; nothing falls back silently.
 *
 * Secrets never live in `[vars]`: `WEBHOOK_SECRETS` (outbound signing keys) and each inbound hook's secret
 * are Worker secrets; `WEBHOOK_HOOKS` only names the secret a hook uses.
 */
import { z } from "zod";
import { ConfigError, intVar, parseVariables } from "../config.js";

/** Queues cap a message's delay at 12 hours; a longer back-off could not be scheduled. */
export const MAX_QUEUE_DELAY_MS = 12 * 3600 * 1000;
/** `standardwebhooks` rejects timestamps older or newer than 5 minutes whatever we allow. */
export const MAX_REPLAY_WINDOW_S = 300;

export interface RetrySchedule {
  /** Delay before the second attempt (before jitter); doubles per failed attempt. */
  baseMs: number;
  /** Ceiling of a single delay (before jitter). */
  maxMs: number;
}

export interface SigningKey {
  /** `whsec_…` secrets; every one signs each delivery, so a receiver can rotate without downtime. */
  secrets: readonly string[];
  /** SHA-256 hex digests of the API keys allowed to use this key, or `*` for any. */
  owners: readonly string[];
}

export interface InboundHook {
  name: string;
  verify: "standard-webhooks" | "github";
  /** Name of the Worker secret holding the hook's secret(s), comma-separated while rotating. */
  secretBinding: string;
  /** Timestamp tolerance for Standard Webhooks (GitHub signs no timestamp). */
  replayWindowS: number;
  /** Jinja template rendered with `payload` (the parsed JSON body), `hook` and `event`. */
  template: string;
  system: string | null;
  /** Extra chat-completions fields (model, max_tokens, temperature, …) merged into every job of the hook. */
  request: Record<string, unknown>;
  destination: { url: string; secretId: string };
  /** SHA-256 hex of the API key that may read the hook's jobs through `GET /v1/jobs/:id`, if any. */
  ownerKeySha256: string | null;
}

export interface JobsConfig {
  /** Development only: callbacks may use http:// and loopback hosts (never private networks). */
  devMode: boolean;
  retry: RetrySchedule;
  /** Delivery attempts per job, the first included; after the last the job is dead-lettered. */
  maxDeliveryAttempts: number;
  /** Generation attempts per job (a GPU worker dying mid-job costs one). */
  maxGenerationAttempts: number;
  /** Whole delivery exchange: connect, headers and reading the (bounded) response body. */
  deliveryTimeoutMs: number;
  /** At most this many bytes of a receiver's response body are read. */
  maxResponseBytes: number;
  /** How long a consumer run owns a job before another run may take it over (it crashed). */
  leaseMs: number;
  /** A job that made no progress for this long is put back on the queue by its own alarm. */
  watchdogMs: number;
  /** Finished jobs are kept (result, attempts, idempotency key) this long, then deleted. */
  retentionMs: number;
  /** An endpoint that answered 410 Gone receives nothing for this long. */
  endpointDisabledMs: number;
  signingKeys: ReadonlyMap<string, SigningKey>;
  hooks: ReadonlyMap<string, InboundHook>;
}

/** The variables this module reads; secrets arrive the same way in a Worker's `env`. */
export interface JobsVars {
  WEBHOOK_DEV_MODE?: string;
  WEBHOOK_RETRY_BASE_MS?: string;
  WEBHOOK_RETRY_MAX_MS?: string;
  WEBHOOK_MAX_ATTEMPTS?: string;
  WEBHOOK_TIMEOUT_MS?: string;
  WEBHOOK_MAX_RESPONSE_BYTES?: string;
  WEBHOOK_ENDPOINT_DISABLED_S?: string;
  WEBHOOK_SECRETS?: string;
  WEBHOOK_HOOKS?: string;
  JOB_GENERATION_ATTEMPTS?: string;
  JOB_LEASE_MS?: string;
  JOB_WATCHDOG_S?: string;
  JOB_RETENTION_S?: string;
}

const flag = z
  .enum(["true", "false", ""], { error: 'must be "true" or "false"' })
  .optional()
  .transform((s) => s === "true");

const SECRET_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `whsec_` + base64 of 24 to 64 random bytes (Standard Webhooks' symmetric key format). */
export function isWebhookSecret(secret: string): boolean {
  if (!secret.startsWith("whsec_")) return false;
  try {
    const bytes = atob(secret.slice("whsec_".length)).length;
    return bytes >= 24 && bytes <= 64;
  } catch {
    return false;
  }
}

const webhookSecret = z.string().refine(isWebhookSecret, "must be whsec_ followed by base64 of 24-64 random bytes");

const signingKeysSchema = z.record(
  z.string().regex(SECRET_ID, "secret ids are 1-64 letters, digits, _ . -"),
  z.strictObject({
    secrets: z.array(webhookSecret).min(1).max(8),
    owners: z.array(z.union([z.literal("*"), z.string().regex(SHA256_HEX, "owners are SHA-256 hex digests of API keys, or *")])).min(1),
  }),
);

const hookSchema = z.strictObject({
  verify: z.enum(["standard-webhooks", "github"]),
  secret: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, "the name of a Worker secret (upper case, digits, _)"),
  replay_window_s: z.int().min(1).max(MAX_REPLAY_WINDOW_S).default(MAX_REPLAY_WINDOW_S),
  template: z.string().min(1).max(16_384),
  system: z.string().max(16_384).optional(),
  request: z.record(z.string(), z.unknown()).default({}),
  destination: z.strictObject({ url: z.string().min(1), secret_id: z.string().regex(SECRET_ID).default("default") }),
  owner_key_sha256: z.string().regex(SHA256_HEX).optional(),
});

const hooksSchema = z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "hook names are 1-64 of a-z 0-9 _ -"), hookSchema);

/** A JSON-valued variable validated by `schema`; empty means `{}`. */
const jsonVar = <S extends z.ZodType>(schema: S) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === "") return {};
      try {
        return JSON.parse(s) as unknown;
      } catch (e) {
        ctx.addIssue({ code: "custom", message: `is not valid JSON: ${(e as Error).message}` });
        return z.NEVER;
      }
    })
    .pipe(schema);

const envSchema = z.object({
  WEBHOOK_DEV_MODE: flag,
  WEBHOOK_RETRY_BASE_MS: intVar(0, MAX_QUEUE_DELAY_MS, 5_000),
  WEBHOOK_RETRY_MAX_MS: intVar(0, MAX_QUEUE_DELAY_MS, MAX_QUEUE_DELAY_MS),
  WEBHOOK_MAX_ATTEMPTS: intVar(1, 50, 16),
  WEBHOOK_TIMEOUT_MS: intVar(100, 60_000, 15_000),
  WEBHOOK_MAX_RESPONSE_BYTES: intVar(0, 1 << 20, 16_384),
  WEBHOOK_ENDPOINT_DISABLED_S: intVar(1, 365 * 86_400, 86_400),
  WEBHOOK_SECRETS: jsonVar(signingKeysSchema),
  WEBHOOK_HOOKS: jsonVar(hooksSchema),
  JOB_GENERATION_ATTEMPTS: intVar(1, 20, 5),
  JOB_LEASE_MS: intVar(1_000, 3_600_000, 900_000),
  JOB_WATCHDOG_S: intVar(10, 7 * 86_400, 3_600),
  JOB_RETENTION_S: intVar(60, 365 * 86_400, 7 * 86_400),
});

export function parseJobsConfig(vars: JobsVars): JobsConfig {
  const v = parseVariables(envSchema, vars);
  const signingKeys = new Map(Object.entries(v.WEBHOOK_SECRETS).map(([id, key]) => [id, { secrets: key.secrets, owners: key.owners }]));
  const hooks = new Map<string, InboundHook>();
  for (const [name, h] of Object.entries(v.WEBHOOK_HOOKS)) {
    if (!signingKeys.has(h.destination.secret_id)) {
      throw new ConfigError(`configuration variable WEBHOOK_HOOKS.${name}.destination.secret_id: "${h.destination.secret_id}" is not in WEBHOOK_SECRETS`);
    }
    hooks.set(name, {
      name,
      verify: h.verify,
      secretBinding: h.secret,
      replayWindowS: h.replay_window_s,
      template: h.template,
      system: h.system ?? null,
      request: h.request,
      destination: { url: h.destination.url, secretId: h.destination.secret_id },
      ownerKeySha256: h.owner_key_sha256 ?? null,
    });
  }
  return {
    devMode: v.WEBHOOK_DEV_MODE,
    retry: { baseMs: v.WEBHOOK_RETRY_BASE_MS, maxMs: v.WEBHOOK_RETRY_MAX_MS },
    maxDeliveryAttempts: v.WEBHOOK_MAX_ATTEMPTS,
    maxGenerationAttempts: v.JOB_GENERATION_ATTEMPTS,
    deliveryTimeoutMs: v.WEBHOOK_TIMEOUT_MS,
    maxResponseBytes: v.WEBHOOK_MAX_RESPONSE_BYTES,
    leaseMs: v.JOB_LEASE_MS,
    watchdogMs: v.JOB_WATCHDOG_S * 1000,
    retentionMs: v.JOB_RETENTION_S * 1000,
    endpointDisabledMs: v.WEBHOOK_ENDPOINT_DISABLED_S * 1000,
    signingKeys,
    hooks,
  };
}

/** The signing key `secretId` if `ownerKeyHash` may use it (hooks pass null: operators configured them). */
export function signingKeyFor(config: JobsConfig, secretId: string, ownerKeyHash: string | null): SigningKey | null {
  const key = config.signingKeys.get(secretId);
  if (key === undefined) return null;
  if (ownerKeyHash === null || key.owners.includes("*") || key.owners.includes(ownerKeyHash)) return key;
  return null;
}
