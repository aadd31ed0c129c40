/**
 * Node side of the Workers tests (vitest globalSetup): builds the tiny model once, starts two real GPU worker
 * processes shared by the test files, and runs a small supervisor HTTP service through which tests (running
 * inside workerd, where processes cannot be spawned) start, kill, pause and resume extra workers of their own.
 * It also reads Meta's golden vectors from ../shared for the tests that compare against them.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { tinyModelDir } from "../helpers/models.js";
import { REPO_ROOT, startWorker, type WorkerProcess } from "../gpu/helpers/worker-process.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Comma-separated URLs of the two shared GPU workers. */
    gpuWorkers: string;
    workerSecret: string;
    /** Base URL of the supervisor (POST /workers, POST /workers/:id/{kill,pause,resume}). */
    supervisorUrl: string;
    /** ../shared/llama3/golden-vectors.json as text, or "" when ../shared is absent. */
    goldenVectors: string;
  }
}

const GOLDEN = join(REPO_ROOT, "..", "shared", "llama3", "golden-vectors.json");

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const modelDir = await tinyModelDir();
  const secret = randomBytes(24).toString("hex");
  const workers = new Map<string, WorkerProcess>();
  let next = 0;

  // MAX_RUNNING 1: the workers behave like GPU workers (one generation at a time, the rest queue), which the
  // queueing and routing tests rely on; on CPU the worker's own default would batch 4.
  const spawnWorker = async (env: Record<string, string> = {}) => {
    const worker = await startWorker({ MODEL_DIR: modelDir, DEVICE: "cpu", KEEPALIVE_MS: "100", MAX_RUNNING: "1", ...env, WORKER_SECRET: secret });
    const id = String(next++);
    workers.set(id, worker);
    return { id, url: worker.url };
  };

  const signal = async (id: string, sig: NodeJS.Signals) => {
    const worker = workers.get(id);
    if (!worker) throw new Error(`no worker ${id}`);
    if (sig === "SIGKILL") {
      await worker.stop("SIGKILL");
      workers.delete(id);
    } else {
      worker.child.kill(sig);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const send = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    try {
      const url = new URL(req.url ?? "/", "http://x");
      const action = /^\/workers\/(\d+)\/(kill|pause|resume)$/.exec(url.pathname);
      if (req.method === "POST" && url.pathname === "/workers") {
        send(200, await spawnWorker(body ? (JSON.parse(body) as { env?: Record<string, string> }).env : {}));
      } else if (req.method === "POST" && action) {
        await signal(action[1]!, action[2] === "kill" ? "SIGKILL" : action[2] === "pause" ? "SIGSTOP" : "SIGCONT");
        send(200, { ok: true });
      } else {
        send(404, { error: "unknown supervisor route" });
      }
    } catch (error) {
      send(500, { error: String(error) });
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const shared = await Promise.all([spawnWorker(), spawnWorker()]);

  project.provide("gpuWorkers", shared.map((w) => w.url).join(","));
  project.provide("workerSecret", secret);
  project.provide("supervisorUrl", `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  if (existsSync(GOLDEN)) {
    project.provide("goldenVectors", readFileSync(GOLDEN, "utf8"));
  } else {
    console.warn(`\n!!! ${GOLDEN} is absent: the edge golden-vector tests are SKIPPED !!!\n`);
    project.provide("goldenVectors", "");
  }

  return async () => {
    for (const worker of workers.values()) {
      worker.child.kill("SIGCONT");
      await worker.stop("SIGKILL");
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
