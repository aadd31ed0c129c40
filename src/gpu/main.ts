/**
 * GPU worker entry point (`npm run worker`): configuration from the environment, start-up checks, HTTP
 * server, model load, graceful shutdown on SIGTERM/SIGINT. See docs/protocol.md and src/gpu/config.ts.
 */
import { Tokenizer } from "../llama/tokenizer.js";
import { loadDefaultTokenizer } from "../node/tokenizer-asset.js";
import { ConfigError, configFromEnv, type WorkerConfig } from "./config.js";
import { existsSync } from "node:fs";
import { FastEngine } from "./fast-generation.js";
import { createJsonLogger, type Logger } from "./logger.js";
import { StartupError, checkDevice, inspectModelFolder, type ModelFolder } from "./model-folder.js";
import { createWorkerRouter } from "./router.js";
import { ModelRunner } from "./runner.js";
import { listen } from "./server.js";
import { WorkerService } from "./service.js";
import { cpuSessionOptions } from "./cpu-session-options.js";

async function loadTokenizer(folder: ModelFolder, logger: Logger): Promise<Tokenizer> {
  const tokenizer = folder.tokenizerFile ? await Tokenizer.fromFile(folder.tokenizerFile) : await loadDefaultTokenizer();
  if (tokenizer.vocabSize > folder.args.vocab_size) {
    logger.warn("tokenizer_larger_than_model", { tokenizer_vocab: tokenizer.vocabSize, model_vocab: folder.args.vocab_size });
  }
  return tokenizer;
}

/**
 * Opens the static-KV decoder next to the transformers.js model when FAST_DECODER=auto and it can run here:
 * the folder has the graph for the dtype and the device is cpu or webgpu (the decoder has no CUDA path).
 * Its cost: a second onnxruntime session over the same weight file (the weights are loaded again) and a cache
 * of `capacity` tokens (allocated once on WebGPU, grown to on the CPU).
 */
async function openFastEngine(config: WorkerConfig, folder: ModelFolder, warmToken: number, logger: Logger): Promise<FastEngine | null> {
  if (config.fastDecoder === "off") return null;
  // The builder's staticKvFileName: onnx/model<suffix>.static-kv.onnx beside the transformers.js graph.
  const modelPath = folder.onnxFile.replace(/\.onnx$/, ".static-kv.onnx");
  const skip = (reason: string) => (logger.info("fast_decoder_off", { reason }), null);
  if (!existsSync(modelPath)) return skip(`${modelPath} does not exist (build the folder with staticKv: true)`);
  if (config.device !== "cpu" && config.device !== "webgpu") return skip(`the static-KV decoder does not run on ${config.device}`);
  const capacity = Math.min(folder.maxContext, config.fastDecoderMaxContext);
  const { layers, kvHeads, headDim } = folder.kvShape;
  const bytesPerElement = folder.dtype === "fp16" || folder.dtype === "q4f16" ? 2 : 4; // caches in the activation type
  const start = performance.now();
  try {
    const engine = await FastEngine.open(
      {
        modelPath,
        device: config.device,
        capacity,
        readbackEvery: config.fastDecoderReadback,
        prefixReuse: config.prefixReuse,
        sessionOptions: cpuSessionOptions(config.device, config.cpu),
      },
      warmToken,
    );
    logger.info("fast_decoder", {
      model_path: modelPath,
      capacity,
      readback_every: config.fastDecoderReadback,
      kv_cache_bytes: layers * kvHeads * headDim * 2 * bytesPerElement * capacity,
      open_ms: Math.round(performance.now() - start),
    });
    return engine;
  } catch (error) {
    throw new StartupError(`FAST_DECODER=auto: opening ${modelPath} failed: ${(error as Error).message} (set FAST_DECODER=off to serve without it)`);
  }
}

async function start(config: WorkerConfig, logger: Logger): Promise<void> {
  checkDevice(config.device);
  const folder = inspectModelFolder(config);
  const tokenizer = await loadTokenizer(folder, logger);

  let service: WorkerService | null = null;
  const router = createWorkerRouter({
    service: () => service,
    loadingStatus: () => ({
      ready: false,
      model: folder.name,
      device: config.device,
      dtype: folder.dtype,
      max_context: folder.maxContext,
      queue_depth: 0,
      queue_capacity: config.queueCapacity,
      running: 0,
      kv_sessions: 0,
      kv_bytes: 0,
      load: 0,
    }),
    secrets: config.secrets,
    maxBodyBytes: config.maxBodyBytes,
    logger,
  });
  const { server, port } = await listen(router.fetch, config.host, config.port);
  logger.info("listening", { host: config.host, port, model: folder.name, device: config.device, dtype: folder.dtype });

  const loadStart = performance.now();
  const runner = await ModelRunner.load(folder, config.device, config.cpu);
  // One pass on BOS so session initialisation (and WebGPU shader compilation) is not paid by the first request.
  const warmToken = tokenizer.bosId < folder.args.vocab_size ? tokenizer.bosId : 0;
  const warm = runner.newState();
  await runner.forward(warm, [warmToken]);
  warm.dispose();
  const fast = await openFastEngine(config, folder, warmToken, logger);
  // Batched decoding merges caches on the CPU: only where they live there, and only if the graph passes the probe.
  const batchLayout =
    config.maxRunning > 1 && config.batchDecode === "auto" && config.device === "cpu" ? await runner.probeBatchLayout() : null;
  if (config.maxRunning > 1) logger.info("batch_decode", { layout: batchLayout, max_rows: batchLayout ? config.maxRunning : 1 });
  service = new WorkerService({ config, folder, runner, batchLayout, tokenizer, logger, fast });
  logger.info("ready", {
    load_ms: Math.round(performance.now() - loadStart),
    max_context: folder.maxContext,
    vocab_size: folder.args.vocab_size,
    stop_tokens: folder.stopTokens,
    queue_capacity: config.queueCapacity,
    kv_budget_bytes: config.kvBudgetBytes,
    prefix_reuse: config.prefixReuse,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info("shutdown_started", { signal, grace_ms: config.shutdownGraceMs });
    // Stop accepting connections; streams in flight continue until their generation ends.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await service!.shutdown(config.shutdownGraceMs);
    // Let the last `done` events reach their clients before the process exits.
    server.closeIdleConnections();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    await fast?.dispose();
    await runner.dispose();
    logger.info("shutdown_complete", {});
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

const logger = createJsonLogger({ level: (process.env.LOG_LEVEL as "info" | undefined) ?? "info" });
process.on("unhandledRejection", (error: unknown) => logger.error("unhandled_rejection", { error }));

try {
  const config = configFromEnv(process.env);
  await start(config, createJsonLogger({ level: config.logLevel }));
} catch (error) {
  if (error instanceof ConfigError || error instanceof StartupError) {
    logger.error("startup_failed", { error: error.message });
    process.stderr.write(`llama-edge worker: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
