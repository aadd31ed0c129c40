import type { InferenceSession } from "onnxruntime-node";
import type { Device } from "./config.js";

/** The worker's CPU settings for onnxruntime (CPU_THREADS, CPU_SPIN). */
export interface CpuSettings {
  /** Intra-op threads; 0: onnxruntime's default (one per core). */
  threads: number;
  /** Whether idle intra-op threads spin-wait for the next run instead of sleeping. */
  spin: boolean;
}

/**
 * Session options for every onnxruntime session the worker opens on the CPU (transformers.js' and the fast
 * decoder's), so both honour the same settings; none on other devices. Spinning is off by default because
 * the worker does work of its own between runs (sampling, streaming each token over HTTP) and spinning pool
 * threads take the cores that work needs: on a 2-core machine, decode ran 1.5x faster with it off
 * (docs/benchmarks.md, GPU worker).
 */
export function cpuSessionOptions(device: Device, cpu: CpuSettings): InferenceSession.SessionOptions {
  if (device !== "cpu") return {};
  return {
    ...(cpu.threads > 0 ? { intraOpNumThreads: cpu.threads } : {}),
    extra: { session: { intra_op: { allow_spinning: cpu.spin ? "1" : "0" } } },
  };
}
