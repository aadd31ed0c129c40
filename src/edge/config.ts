/**
 * Gateway settings, read from the Worker's environment variables (wrangler.toml `[vars]` and secrets) and
 * validated once. Every variable is a string in Cloudflare's model, so numbers and lists are parsed here;
 * a bad value is a configuration error that names the variable, never a silent default.
 */
import { z } from "zod";

export interface EdgeTimeouts {
  /** Time allowed for a GPU worker to answer `POST /v1/generate` with response headers. */
  connectMs: number;
  /** Longest silence (no event at all, keep-alives included) before a GPU stream counts as stuck. */
  stallMs: number;
  /** Budget sent to the GPU worker as `deadline_ms` (queueing + generation). */
  deadlineMs: number;
  /** Time allowed for `GET /readyz`. */
  readyzMs: number;
  /** How long a `/readyz` answer is trusted before it is refreshed. */
  readyzTtlMs: number;
  /** How long a worker that failed stays out of rotation before it is probed again. */
  downMs: number;
}

export interface EdgeConfig {
  /** Base URLs of the GPU workers (no trailing slash). */
  gpuWorkers: readonly string[];
  /** Shared HMAC secret of the edge ⇄ GPU-worker protocol. */
  workerSecret: string;
  /** Public model id served by `/v1/models` and accepted in requests. */
  modelId: string;
  /** Other names accepted for the model (e.g. Workers AI ids). */
  modelAliases: readonly string[];
  /** Upper bound of prompt + max tokens; the effective limit is min(this, the worker's max_context). */
  maxContext: number;
  /** Largest accepted request body in bytes (413 above it). */
  maxBodyBytes: number;
  /** Origins allowed by CORS; empty means CORS is off (no CORS headers, preflights get 404). */
  corsOrigins: readonly string[];
  /** "required": every `/v1` and `/ai` request needs an API key; "off": development only. */
  auth: "required" | "off";
  /** SHA-256 (hex) of API keys accepted without a KV lookup (from a secret). */
  apiKeyHashes: readonly string[];
  timeouts: EdgeTimeouts;
  /** Interval of SSE comment lines while nothing else is sent. */
  sseKeepaliveMs: number;
  /** Idle time after which a session's worker assignment is forgotten. */
  sessionTtlS: number;
  /** Most GPU workers tried for one request before giving up (failover before the first token). */
  maxAttempts: number;
  /** One JSON log line per request ("on"), or only failures ("off"). */
  logRequests: boolean;
}

const DEFAULTS = {
  MODEL_ID: "meta-llama/Llama-3.1-8B-Instruct",
  MODEL_ALIASES: "llama-3.1-8b-instruct,@cf/meta/llama-3.1-8b-instruct,@cf/meta/llama-3.1-8b-instruct-fast",
  MAX_CONTEXT: 131072,
  MAX_BODY_BYTES: 4 * 1024 * 1024,
  GPU_CONNECT_TIMEOUT_MS: 10_000,
  GPU_STALL_TIMEOUT_MS: 30_000,
  GPU_DEADLINE_MS: 300_000,
  READYZ_TIMEOUT_MS: 2_000,
  READYZ_TTL_MS: 1_000,
  WORKER_DOWN_MS: 5_000,
  SSE_KEEPALIVE_MS: 15_000,
  SESSION_TTL_S: 3_600,
  MAX_ATTEMPTS: 3,
} as const;

const splitList = (s: string): string[] => s.split(/[\s,]+/).filter((x) => x !== "");

/** A list in a variable: commas and/or whitespace separate the entries. */
const list = z.string().default("").transform(splitList);

/** An integer variable within [min, max]; unset or blank means `fallback`. Shared with jobs/config.ts. */
export const intVar = (min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === "") return fallback;
      const n = Number(s);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `must be an integer from ${min} to ${max}, got "${s}"` });
        return z.NEVER;
      }
      return n;
    });

const workerUrl = z
  .string()
  .transform((s) => s.replace(/\/+$/, ""))
  .refine((s) => /^https?:\/\/[^\s/]+/.test(s), "must be an http(s) URL");

const envSchema = z.object({
  GPU_WORKERS: list.pipe(z.array(workerUrl)),
  WORKER_SECRET: z.string().default(""),
  MODEL_ID: z.string().min(1).default(DEFAULTS.MODEL_ID),
  MODEL_ALIASES: z.string().default(DEFAULTS.MODEL_ALIASES).transform(splitList),
  MAX_CONTEXT: intVar(16, 1 << 24, DEFAULTS.MAX_CONTEXT),
  MAX_BODY_BYTES: intVar(1024, 1 << 30, DEFAULTS.MAX_BODY_BYTES),
  CORS_ORIGINS: list,
  AUTH: z.enum(["required", "off"]).default("required"),
  API_KEY_HASHES: list.pipe(z.array(z.string().regex(/^[0-9a-f]{64}$/, "must be SHA-256 hex digests (64 lowercase hex characters)"))),
  GPU_CONNECT_TIMEOUT_MS: intVar(1, 600_000, DEFAULTS.GPU_CONNECT_TIMEOUT_MS),
  GPU_STALL_TIMEOUT_MS: intVar(1, 3_600_000, DEFAULTS.GPU_STALL_TIMEOUT_MS),
  GPU_DEADLINE_MS: intVar(1, 86_400_000, DEFAULTS.GPU_DEADLINE_MS),
  READYZ_TIMEOUT_MS: intVar(1, 60_000, DEFAULTS.READYZ_TIMEOUT_MS),
  READYZ_TTL_MS: intVar(0, 3_600_000, DEFAULTS.READYZ_TTL_MS),
  WORKER_DOWN_MS: intVar(0, 3_600_000, DEFAULTS.WORKER_DOWN_MS),
  SSE_KEEPALIVE_MS: intVar(10, 600_000, DEFAULTS.SSE_KEEPALIVE_MS),
  SESSION_TTL_S: intVar(1, 30 * 86_400, DEFAULTS.SESSION_TTL_S),
  MAX_ATTEMPTS: intVar(1, 16, DEFAULTS.MAX_ATTEMPTS),
  LOG_REQUESTS: z.enum(["on", "off"]).default("on"),
});

/** Names of every variable the gateway reads (documented in docs/edge.md). */
export const GATEWAY_VARIABLES = Object.keys(envSchema.shape) as readonly (keyof typeof envSchema.shape)[];

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The environment variables the gateway reads; anything else in `env` (bindings) is ignored here. */
export type EdgeVars = Partial<Record<keyof z.input<typeof envSchema>, string>>;

/** Validates variables with `schema`; throws {@link ConfigError} naming the first bad variable. Shared with jobs/config.ts. */
export function parseVariables<S extends z.ZodType>(schema: S, vars: unknown): z.output<S> {
  const parsed = schema.safeParse(vars);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`configuration variable ${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

/** Parses the gateway's variables; throws {@link ConfigError} naming the first bad variable. */
export function parseEdgeConfig(vars: EdgeVars): EdgeConfig {
  const v = parseVariables(envSchema, vars);
  return {
    gpuWorkers: [...new Set(v.GPU_WORKERS)],
    workerSecret: v.WORKER_SECRET,
    modelId: v.MODEL_ID,
    modelAliases: v.MODEL_ALIASES,
    maxContext: v.MAX_CONTEXT,
    maxBodyBytes: v.MAX_BODY_BYTES,
    corsOrigins: v.CORS_ORIGINS,
    auth: v.AUTH,
    apiKeyHashes: v.API_KEY_HASHES,
    timeouts: {
      connectMs: v.GPU_CONNECT_TIMEOUT_MS,
      stallMs: v.GPU_STALL_TIMEOUT_MS,
      deadlineMs: v.GPU_DEADLINE_MS,
      readyzMs: v.READYZ_TIMEOUT_MS,
      readyzTtlMs: v.READYZ_TTL_MS,
      downMs: v.WORKER_DOWN_MS,
    },
    sseKeepaliveMs: v.SSE_KEEPALIVE_MS,
    sessionTtlS: v.SESSION_TTL_S,
    maxAttempts: v.MAX_ATTEMPTS,
    logRequests: v.LOG_REQUESTS === "on",
  };
}
