/**
 * Worker configuration from the environment, validated once at start-up. Every setting has a documented
 * default except the model folder and the secret, which must be given.
 */
import { z } from "zod";
import type { CpuSettings } from "./cpu-session-options.js";

export const DEVICES = ["cpu", "webgpu", "cuda"] as const;
export type Device = (typeof DEVICES)[number];

/** transformers.js dtype names and the ONNX file suffix each selects (`onnx/model<suffix>.onnx`). */
export const DTYPE_FILE_SUFFIX = {
  fp32: "",
  fp16: "_fp16",
  q8: "_quantized",
  int8: "_int8",
  uint8: "_uint8",
  q4: "_q4",
  q4f16: "_q4f16",
  bnb4: "_bnb4",
} as const;
export type Dtype = keyof typeof DTYPE_FILE_SUFFIX;

const intFromEnv = (name: string, min: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === "") return fallback;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < min) {
        ctx.addIssue({ code: "custom", message: `${name} must be an integer >= ${min}, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const envSchema = z.object({
  MODEL_DIR: z.string({ error: "MODEL_DIR is required: the transformers.js model folder to serve" }).min(1, "MODEL_DIR is empty"),
  MODEL_NAME: z.string().optional(),
  DEVICE: z.enum(DEVICES, { error: `DEVICE must be one of ${DEVICES.join(", ")}` }).default("cpu"),
  DTYPE: z
    .enum(Object.keys(DTYPE_FILE_SUFFIX) as [Dtype, ...Dtype[]], {
      error: `DTYPE must be one of ${Object.keys(DTYPE_FILE_SUFFIX).join(", ")}`,
    })
    .optional(),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: intFromEnv("PORT", 0, 8788),
  WORKER_SECRET: z
    .string({ error: "WORKER_SECRET is required: the HMAC secret shared with the edge (comma-separated to rotate)" })
    .transform((v) => v.split(",").map((s) => s.trim()).filter((s) => s !== ""))
    .refine((list) => list.length > 0 && list.every((s) => s.length >= 16), {
      message: "WORKER_SECRET must hold secrets of at least 16 characters",
    }),
  QUEUE_CAPACITY: intFromEnv("QUEUE_CAPACITY", 0, 16),
  /** 0: by device (see DEFAULT_MAX_RUNNING). */
  MAX_RUNNING: intFromEnv("MAX_RUNNING", 1, 0),
  BATCH_DECODE: z.enum(["auto", "off"], { error: "BATCH_DECODE must be auto or off" }).default("auto"),
  KV_BUDGET_BYTES: intFromEnv("KV_BUDGET_BYTES", 0, 1024 ** 3),
  PREFIX_REUSE: z.enum(["on", "off"], { error: "PREFIX_REUSE must be on or off" }).default("on"),
  MAX_CONTEXT: intFromEnv("MAX_CONTEXT", 2, 0),
  FAST_DECODER: z.enum(["auto", "off"], { error: "FAST_DECODER must be auto or off" }).default("auto"),
  FAST_DECODER_MAX_CONTEXT: intFromEnv("FAST_DECODER_MAX_CONTEXT", 16, 8192),
  FAST_DECODER_READBACK: intFromEnv("FAST_DECODER_READBACK", 1, 16),
  KEEPALIVE_MS: intFromEnv("KEEPALIVE_MS", 50, 5000),
  MAX_BODY_BYTES: intFromEnv("MAX_BODY_BYTES", 1024, 4 * 1024 * 1024),
  SHUTDOWN_GRACE_MS: intFromEnv("SHUTDOWN_GRACE_MS", 0, 60_000),
  CPU_THREADS: intFromEnv("CPU_THREADS", 0, 0),
  CPU_SPIN: z.enum(["on", "off"], { error: "CPU_SPIN must be on or off" }).default("off"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
});

/**
 * Generations admitted at once when MAX_RUNNING is not set. On the CPU, generations admitted together share
 * batched decode steps, which raised aggregate throughput 1.4–1.7× and cut time to first token under load by
 * 5–8× in scripts/bench-worker.ts (docs/benchmarks.md). On GPUs the caches are not batched (they would have to
 * leave the device to be merged) and alternating steps only lost throughput, so one at a time.
 */
export const DEFAULT_MAX_RUNNING: Record<Device, number> = { cpu: 4, webgpu: 1, cuda: 1 };

export interface WorkerConfig {
  modelDir: string;
  /** Name reported in /readyz; defaults to the folder's base name. */
  modelName: string | undefined;
  device: Device;
  /** Absent: the only ONNX file in the folder decides (see model-folder.ts). */
  dtype: Dtype | undefined;
  host: string;
  port: number;
  secrets: string[];
  queueCapacity: number;
  /**
   * Generations admitted at once (default by device, DEFAULT_MAX_RUNNING). They alternate decode steps on the
   * JS thread (onnxruntime runs synchronously); on the CPU their steps are batched (batchDecode). 1: FIFO.
   */
  maxRunning: number;
  /**
   * auto: generations running side by side share batched decode steps when the device keeps caches on the CPU
   * and the loaded graph passes the batch-layout probe; off: every step runs alone.
   */
  batchDecode: "auto" | "off";
  kvBudgetBytes: number;
  /**
   * on: a prompt that starts with tokens a cache already holds (its session's LRU entry, or the fast
   * decoder's last sequence) computes only the rest. off: every prompt is computed whole and nothing is kept
   * between requests, so a request's tokens never depend on what ran before (on WebGPU in fp16, a suffix
   * computed on top of a cache can round differently from a whole prompt), and the cost of a chat without
   * reuse can be measured.
   */
  prefixReuse: boolean;
  /** 0: the model's own limit. */
  maxContext: number;
  /**
   * auto: requests run on the static-KV decoder (fast-generation.ts: greedy ones with the token chosen on the
   * device, the rest sampled on the host) when the folder has its graph for the dtype
   * (`onnx/model<suffix>.static-kv.onnx`) and the device is cpu or webgpu; off: every request runs on
   * transformers.js.
   */
  fastDecoder: "auto" | "off";
  /**
   * Upper bound of the static-KV cache capacity (tokens); the capacity is min(max context, this). Its memory
   * (layers × kv heads × head dim × 2 (K, V) × bytes per element per token) is allocated at start-up on
   * WebGPU; on the CPU the cache grows to it as sequences need.
   */
  fastDecoderMaxContext: number;
  /** Decode steps queued between two token readbacks on the fast decoder (at most 64, the graph's ring). */
  fastDecoderReadback: number;
  keepaliveMs: number;
  maxBodyBytes: number;
  shutdownGraceMs: number;
  /** onnxruntime on the CPU: intra-op threads (0: onnxruntime's default) and spin-waiting (cpu-session-options.ts). */
  cpu: CpuSettings;
  logLevel: "debug" | "info" | "warn" | "error";
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function configFromEnv(env: Record<string, string | undefined>): WorkerConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  - ${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`);
    throw new ConfigError(`invalid worker configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  return {
    modelDir: e.MODEL_DIR,
    modelName: e.MODEL_NAME,
    device: e.DEVICE,
    dtype: e.DTYPE,
    host: e.HOST,
    port: e.PORT,
    secrets: e.WORKER_SECRET,
    queueCapacity: e.QUEUE_CAPACITY,
    maxRunning: e.MAX_RUNNING || DEFAULT_MAX_RUNNING[e.DEVICE],
    batchDecode: e.BATCH_DECODE,
    kvBudgetBytes: e.KV_BUDGET_BYTES,
    prefixReuse: e.PREFIX_REUSE === "on",
    maxContext: e.MAX_CONTEXT,
    fastDecoder: e.FAST_DECODER,
    fastDecoderMaxContext: e.FAST_DECODER_MAX_CONTEXT,
    fastDecoderReadback: e.FAST_DECODER_READBACK,
    keepaliveMs: e.KEEPALIVE_MS,
    maxBodyBytes: e.MAX_BODY_BYTES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    cpu: { threads: e.CPU_THREADS, spin: e.CPU_SPIN === "on" },
    logLevel: e.LOG_LEVEL,
  };
}
