/**
 * Runs the real GPU worker (`src/gpu/main.ts`) as a child process on CPU and talks to it over HTTP with
 * signed requests, as the edge does.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  parseNdjsonStream,
  signWorkerRequest,
  type DoneEvent,
  type GenerateRequestInput,
  type Readyz,
  type StartEvent,
  type WorkerEvent,
} from "../../../src/protocol/index.js";
import { GPU_WORKER_ARGS, spawnGpuWorker } from "../../../scripts/gpu-process.js";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface LogLine {
  event: string;
  level: string;
  [key: string]: unknown;
}

export interface WorkerProcess {
  readonly url: string;
  readonly secret: string;
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** Signed request (sign: false sends none; body given as an object is JSON-encoded). */
  request(path: string, init?: { method?: string; body?: unknown; sign?: boolean; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response>;
  generate(body: GenerateRequestInput): Promise<GenerateResult>;
  readyz(): Promise<Readyz>;
  metrics(): Promise<Map<string, number>>;
  /** Sends the signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface GenerateResult {
  status: number;
  events: WorkerEvent[];
  start: StartEvent;
  tokens: number[];
  done: DoneEvent;
}

/** Starts a worker on a free port and resolves once it logs `ready`. */
export async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const secret = randomBytes(24).toString("hex");
  const logs: LogLine[] = [];
  const { child, url, exited } = await spawnGpuWorker({
    env: { PORT: "0", HOST: "127.0.0.1", WORKER_SECRET: secret, LOG_LEVEL: "debug", CPU_THREADS: "1", ...env },
    stderr: "pipe",
    onRecord: (record) => logs.push(record as LogLine),
    onOtherLine: (line) => logs.push({ event: "non_json_output", level: "?", line }),
  });
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));

  const request: WorkerProcess["request"] = async (path, init = {}) => {
    const method = init.method ?? (init.body === undefined ? "GET" : "POST");
    const body = init.body === undefined ? "" : typeof init.body === "string" ? init.body : JSON.stringify(init.body);
    const signed = init.sign === false ? {} : await signWorkerRequest(secret, { method, path, body });
    return fetch(`${url}${path}`, {
      method,
      headers: { "content-type": "application/json", ...signed, ...init.headers },
      body: method === "GET" ? undefined : body,
      signal: init.signal,
    });
  };

  return {
    url,
    secret,
    child,
    logs,
    request,
    async generate(body) {
      const res = await request("/v1/generate", { body });
      if (!res.ok) throw new Error(`generate: HTTP ${res.status} ${await res.text()}`);
      const events: WorkerEvent[] = [];
      for await (const e of parseNdjsonStream(res.body!)) events.push(e);
      const start = events.find((e): e is StartEvent => e.type === "start")!;
      const done = events.at(-1) as DoneEvent;
      if (done?.type !== "done") throw new Error(`stream did not end with done: ${JSON.stringify(events.at(-1))}`);
      const tokens = events.flatMap((e) => (e.type === "token" ? [e.id] : []));
      return { status: res.status, events, start, tokens, done };
    },
    async readyz() {
      return (await (await request("/readyz")).json()) as Readyz;
    },
    async metrics() {
      const text = await (await request("/metrics")).text();
      const values = new Map<string, number>();
      for (const line of text.split("\n")) {
        if (line === "" || line.startsWith("#")) continue;
        const at = line.lastIndexOf(" ");
        values.set(line.slice(0, at), Number(line.slice(at + 1)));
      }
      return values;
    },
    async stop(signal = "SIGTERM") {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/** Runs the worker entry point expecting it to refuse to start; returns exit code and stderr. */
export async function startWorkerExpectingFailure(env: Record<string, string | undefined>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, GPU_WORKER_ARGS, {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: "0", WORKER_SECRET: "0123456789abcdef-secret", ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  child.stdout!.resume();
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stderr };
}
