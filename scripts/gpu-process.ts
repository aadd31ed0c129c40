/**
 * Starts the GPU worker (`src/gpu/main.ts`) as a child process and waits until it is ready: the one copy of this
 * plumbing, used by `npm run dev` and the edge/jobs benchmarks (through dev-stack.ts), the worker benchmark, and
 * the tests that run real workers (test/gpu/helpers/worker-process.ts). The worker logs one JSON object per line
 * on stdout; `listening` carries the port it bound (PORT=0 picks a free one), `ready` the model load time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Node arguments that run the worker from its TypeScript sources. */
export const GPU_WORKER_ARGS: readonly string[] = ["--import", "tsx", join(ROOT, "src", "gpu", "main.ts")];

/** One JSON log line of the worker (src/gpu/logger.ts): an event name, a level and the event's fields. */
export interface WorkerLogRecord {
  event?: string;
  level?: string;
  [field: string]: unknown;
}

export interface SpawnGpuWorkerOptions {
  /** Variables set over this process's environment. */
  env: Record<string, string>;
  /** Node arguments that run the worker instead of GPU_WORKER_ARGS (e.g. a bundled entry). */
  args?: readonly string[];
  /**
   * "inherit" passes the worker's stderr through; "pipe" collects it into the error raised when the worker exits
   * before it is ready (tests, whose output would otherwise interleave).
   */
  stderr: "inherit" | "pipe";
  /** Every JSON log record, for the life of the process (also after `ready`). */
  onRecord?: (record: WorkerLogRecord, line: string) => void;
  /** Every stdout line that is not a JSON object. */
  onOtherLine?: (line: string) => void;
}

export interface GpuWorkerChild {
  child: ChildProcess;
  /** http://127.0.0.1:<port> of the `listening` record. */
  url: string;
  /** The `ready` record's load_ms. */
  loadMs: number;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
}

/** Spawns the worker and resolves once it logs `ready`; rejects if it exits first. */
export function spawnGpuWorker(options: SpawnGpuWorkerOptions): Promise<GpuWorkerChild> {
  const child = spawn(process.execPath, [...(options.args ?? GPU_WORKER_ARGS)], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", options.stderr],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  if (options.stderr === "pipe") child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  return new Promise((resolve, reject) => {
    let url = "";
    forEachLine(child, (line) => {
      const record = parseRecord(line);
      if (!record) return options.onOtherLine?.(line);
      options.onRecord?.(record, line);
      if (record.event === "listening") url = `http://127.0.0.1:${record.port as number}`;
      if (record.event === "ready") resolve({ child, url, loadMs: (record.load_ms as number | undefined) ?? 0, exited });
    });
    void exited.then((code) =>
      reject(new Error(`the GPU worker exited with code ${code} before it was ready${stderr ? `: ${stderr}` : ""}`)),
    );
  });
}

/** Calls `onLine` for every complete line of the child's stdout. */
function forEachLine(child: ChildProcess, onLine: (line: string) => void): void {
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
  });
}

function parseRecord(line: string): WorkerLogRecord | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as WorkerLogRecord) : undefined;
  } catch {
    return undefined;
  }
}
