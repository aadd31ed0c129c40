/**
 * Process plumbing shared by `npm run dev` (scripts/dev.ts) and the edge benchmark (scripts/bench-edge.ts):
 * the development model, a GPU worker child process, and the Worker under `wrangler dev`, offline.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PRESETS } from "../src/model/config.js";
import { buildModelFolder, type BuildProgress } from "../src/model/onnx/index.js";
import { randomWeights } from "../src/model/weights.js";
import { spawnGpuWorker } from "./gpu-process.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
export const DEV_MODEL_DIR = join(ROOT, "build", "dev-model", "tiny-s1-gpu-fp32-static-kv");

/**
 * The tiny random Llama 3.1-shaped model (preset tiny, seed 1, fp32, with the static-KV graph so that greedy
 * requests run on the fast decoder as they would in production), built once with progress lines.
 */
export async function ensureDevModel(say: (line: string) => void): Promise<string> {
  if (existsSync(join(DEV_MODEL_DIR, "config.json"))) return DEV_MODEL_DIR;
  say("building a tiny random Llama 3.1-shaped model (preset tiny, seed 1) once…");
  const started = performance.now();
  let last = 0;
  const tmp = `${DEV_MODEL_DIR}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await buildModelFolder({
    outDir: tmp,
    weights: randomWeights(PRESETS.tiny, 1),
    flavour: "gpu",
    dtypes: ["fp32"],
    staticKv: true,
    onProgress: (p: BuildProgress) => {
      const now = performance.now();
      if (p.done < p.total && now - last < 1000) return;
      last = now;
      say(`  building model: ${p.stage} ${p.done}/${p.total} (${Math.round((100 * p.done) / p.total)}%)`);
    },
  });
  renameSync(tmp, DEV_MODEL_DIR);
  say(`  built in ${((performance.now() - started) / 1000).toFixed(1)} s: ${DEV_MODEL_DIR}`);
  return DEV_MODEL_DIR;
}

export interface GpuWorkerProcess {
  url: string;
  child: ChildProcess;
  loadMs: number;
}

/** Starts `src/gpu/main.ts` on the CPU and resolves once it logs `ready`; warnings, errors and non-JSON output are echoed. */
export async function startGpuWorker(env: Record<string, string>, echo: (line: string) => void): Promise<GpuWorkerProcess> {
  const { url, child, loadMs } = await spawnGpuWorker({
    env: { DEVICE: "cpu", HOST: "127.0.0.1", ...env },
    stderr: "inherit",
    onRecord: (record, line) => {
      if (record.event !== "ready" && (record.level === "warn" || record.level === "error")) echo(line);
    },
    onOtherLine: echo,
  });
  return { url, child, loadMs };
}

/** Offline wrangler (docs/edge-notes.md §1): no Request.cf download, no metrics. */
const OFFLINE_ENV = { CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };

/**
 * Bundles the Worker as `wrangler deploy` would (`--dry-run --outdir`), so a benchmark can serve a fixed build
 * that does not reload when files in the checkout change. Returns the entry module's path.
 */
export function bundleWorker(outDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(BIN, "wrangler"), ["deploy", "--dry-run", "--outdir", outDir], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, ...OFFLINE_ENV },
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.once("exit", (code) => (code === 0 ? resolve(join(outDir, "worker.js")) : reject(new Error(`wrangler deploy --dry-run exited with ${code}`))));
  });
}

/**
 * Writes `vars` as a wrangler env file. Values are single-quoted: wrangler's .env parser keeps `\"` inside
 * double quotes literally, which would corrupt JSON-valued variables such as WEBHOOK_SECRETS.
 */
function writeEnvFile(path: string, vars: Record<string, string>): void {
  for (const [name, value] of Object.entries(vars)) {
    if (value.includes("'") || value.includes("\n")) throw new Error(`${name}: a value with a single quote or a newline cannot go into an env file`);
  }
  writeFileSync(path, Object.entries(vars).map(([k, v]) => `${k}='${v}'`).join("\n") + "\n", { mode: 0o600 });
}

export interface WranglerDevOptions {
  /** A pre-built entry (see bundleWorker), served as is (`--no-bundle`) instead of building and watching the sources. */
  bundle?: string;
  /** Local state directory (Durable Objects, KV, queues); default: wrangler's own under .wrangler/. */
  persistTo?: string;
}

/**
 * Starts the Worker under `wrangler dev` on 127.0.0.1:`port` with Cloudflare's network features off. `vars`
 * go through an env file (wrangler shows them as hidden), so secrets are not printed.
 */
export function startWranglerDev(vars: Record<string, string>, port: number, quiet: boolean, options: WranglerDevOptions = {}): ChildProcess {
  const { bundle, persistTo } = options;
  const dir = join(ROOT, "build", "dev");
  mkdirSync(dir, { recursive: true });
  const envFile = join(dir, `edge-${port}.env`);
  writeEnvFile(envFile, vars);
  return spawn(
    join(BIN, "wrangler"),
    [
      "dev",
      ...(bundle ? [bundle, "--no-bundle"] : []),
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--env-file",
      envFile,
      "--show-interactive-dev-session=false",
      ...(persistTo ? ["--persist-to", persistTo] : []),
      ...(quiet ? ["--log-level", "warn"] : []),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH ?? ""}`, ...OFFLINE_ENV },
      stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"],
    },
  );
}

export async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
