/**
 * `npm run dev`: the whole stack on this machine, offline, with one command.
 *
 *  1. the model: MODEL_DIR if set, else a tiny random Llama 3.1-shaped model built once into build/dev-model/
 *     (with progress lines; it answers with random tokens, which is enough to exercise everything);
 *  2. a GPU worker (`src/gpu/main.ts`) on DEVICE (default cpu) with a fresh WORKER_SECRET;
 *  3. the Worker under `wrangler dev` with Cloudflare's network features off (no cf.json fetch, no metrics),
 *     pointed at that GPU worker, with a fresh development API key (accepted by its SHA-256 only);
 *  4. the URL and a curl command that works as printed.
 *
 * Settings (environment): MODEL_DIR, DEVICE (cpu | webgpu | cuda), DTYPE, EDGE_PORT (8787), GPU_PORT (8788),
 * DEV_API_KEY (default: random), DEV_WEBHOOK_SECRET (default: random whsec_), and any gateway variable of docs/edge.md (MODEL_ID, CORS_ORIGINS, …), which is
 * passed to the Worker. Ctrl-C stops both processes.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { GATEWAY_VARIABLES } from "../src/edge/config.js";
import { ensureDevModel, startGpuWorker, startWranglerDev, waitForHttp } from "./dev-stack.js";

const children: ChildProcess[] = [];
function stopAll(code: number): void {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  process.exit(code);
}
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

const say = (line: string) => process.stdout.write(`[dev] ${line}\n`);

async function main(): Promise<void> {
  let modelDir = process.env.MODEL_DIR;
  if (modelDir === undefined || modelDir === "") {
    say("MODEL_DIR is not set: serving the tiny random development model");
    modelDir = await ensureDevModel(say);
  }
  const secret = process.env.WORKER_SECRET ?? randomBytes(24).toString("hex");
  const gpuEnv: Record<string, string> = { MODEL_DIR: modelDir, PORT: process.env.GPU_PORT ?? "8788", WORKER_SECRET: secret };
  if (process.env.DEVICE) gpuEnv.DEVICE = process.env.DEVICE;
  const gpu = await startGpuWorker(gpuEnv, (line) => process.stdout.write(`[gpu] ${line}\n`));
  children.push(gpu.child);
  gpu.child.once("exit", (code) => {
    say(`the GPU worker exited with code ${code}`);
    stopAll(1);
  });
  say(`GPU worker ready at ${gpu.url} (model loaded in ${gpu.loadMs} ms)`);

  const apiKey = process.env.DEV_API_KEY ?? `sk-dev-${randomBytes(12).toString("hex")}`;
  const webhookSecret = process.env.DEV_WEBHOOK_SECRET ?? `whsec_${randomBytes(32).toString("base64")}`;
  const vars: Record<string, string> = {
    GPU_WORKERS: gpu.url,
    WORKER_SECRET: secret,
    API_KEY_HASHES: createHash("sha256").update(apiKey).digest("hex"),
    // Webhook jobs work out of the box: one signing key any API key may use, and callbacks to loopback over
    // http (a local receiver), which production refuses.
    WEBHOOK_SECRETS: JSON.stringify({ default: { secrets: [webhookSecret], owners: ["*"] } }),
    WEBHOOK_DEV_MODE: "true",
  };
  for (const name of GATEWAY_VARIABLES) if (!(name in vars) && process.env[name] !== undefined) vars[name] = process.env[name]!;
  const port = Number(process.env.EDGE_PORT ?? "8787");
  const edgeUrl = `http://127.0.0.1:${port}`;
  say(`starting the Worker under wrangler dev on ${edgeUrl} (offline)…`);
  const wrangler = startWranglerDev(vars, port, false);
  children.push(wrangler);
  wrangler.once("exit", (code) => {
    say(`wrangler dev exited with code ${code}`);
    stopAll(code ?? 1);
  });
  await waitForHttp(`${edgeUrl}/healthz`, 120_000);

  const body = JSON.stringify({
    model: vars.MODEL_ID ?? "meta-llama/Llama-3.1-8B-Instruct",
    messages: [{ role: "user", content: "Say hello." }],
    max_tokens: 16,
    stream: true,
  });
  process.stdout.write(
    [
      "",
      `llama-edge is up: ${edgeUrl}  (GPU worker ${gpu.url}, model ${modelDir})`,
      `development API key: ${apiKey}`,
      `webhook signing secret (Standard Webhooks, for POST /v1/jobs deliveries): ${webhookSecret}`,
      "",
      "try:",
      `  curl -N ${edgeUrl}/v1/chat/completions \\`,
      `    -H 'authorization: Bearer ${apiKey}' -H 'content-type: application/json' \\`,
      `    -d '${body}'`,
      "",
      `OpenAI SDKs: baseURL ${edgeUrl}/v1, apiKey ${apiKey}. Ctrl-C stops everything.`,
      "",
    ].join("\n"),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`[dev] ${error instanceof Error ? error.message : String(error)}\n`);
  stopAll(1);
});
