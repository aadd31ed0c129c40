/**
 * Start-up checks of the model folder and the device, so a misconfigured worker stops with one clear
 * message instead of failing inside onnxruntime (or worse, serving with a fallback). Reads only local files.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fromHfConfig, type ModelArgs } from "../model/config.js";
import { DTYPE_FILE_SUFFIX, type Device, type Dtype, type WorkerConfig } from "./config.js";

export class StartupError extends Error {
  override name = "StartupError";
}

export interface ModelFolder {
  dir: string;
  name: string;
  dtype: Dtype;
  onnxFile: string;
  args: ModelArgs;
  /** Number of layers, kv heads and head dim, for KV byte accounting. */
  kvShape: { layers: number; kvHeads: number; headDim: number };
  /** Largest prompt + generation length served: the configured limit, else the model's. */
  maxContext: number;
  /** The model's stop tokens: the eos ids of generation_config.json and config.json. */
  stopTokens: number[];
  /** `tokenizer.json` in the folder, if any. */
  tokenizerFile: string | null;
}

function readJson(path: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new StartupError(`${what} ${path} is not valid JSON: ${(error as Error).message}`);
  }
}

function eosIds(json: unknown): number[] {
  const eos = (json as { eos_token_id?: unknown } | null)?.eos_token_id;
  const list = Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos];
  return list.filter((x): x is number => Number.isSafeInteger(x) && (x as number) >= 0);
}

/** The dtypes for which `onnx/model<suffix>.onnx` exists. */
function availableDtypes(onnxDir: string): Dtype[] {
  const files = existsSync(onnxDir) ? new Set(readdirSync(onnxDir)) : new Set<string>();
  return (Object.keys(DTYPE_FILE_SUFFIX) as Dtype[]).filter((d) => files.has(`model${DTYPE_FILE_SUFFIX[d]}.onnx`));
}

export function inspectModelFolder(config: Pick<WorkerConfig, "modelDir" | "modelName" | "dtype" | "maxContext">): ModelFolder {
  const dir = resolve(config.modelDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new StartupError(`MODEL_DIR ${dir} is not a directory (build one with scripts/build-model.ts)`);
  }
  const configPath = join(dir, "config.json");
  if (!existsSync(configPath)) throw new StartupError(`MODEL_DIR ${dir} has no config.json: not a transformers.js model folder`);
  const configJson = readJson(configPath, "config.json");
  let args: ModelArgs;
  try {
    args = fromHfConfig(configJson);
  } catch (error) {
    throw new StartupError(`config.json in ${dir} is not a Llama configuration: ${(error as Error).message}`);
  }

  const onnxDir = join(dir, "onnx");
  const available = availableDtypes(onnxDir);
  if (available.length === 0) throw new StartupError(`MODEL_DIR ${dir} has no onnx/model*.onnx file`);
  let dtype = config.dtype;
  if (dtype === undefined) {
    if (available.length > 1) {
      throw new StartupError(`MODEL_DIR ${dir} holds several dtypes (${available.join(", ")}): set DTYPE to one of them`);
    }
    dtype = available[0]!;
  }
  const onnxFile = join(onnxDir, `model${DTYPE_FILE_SUFFIX[dtype]}.onnx`);
  if (!existsSync(onnxFile)) {
    throw new StartupError(
      `DTYPE=${dtype} needs ${onnxFile}, which does not exist; this folder has: ${available.join(", ")}`,
    );
  }

  const generationConfigPath = join(dir, "generation_config.json");
  const generationJson = existsSync(generationConfigPath) ? readJson(generationConfigPath, "generation_config.json") : null;
  const stopTokens = [...new Set([...eosIds(generationJson), ...eosIds(configJson)])].filter((id) => id < args.vocab_size);

  if (config.maxContext > args.max_seq_len) {
    throw new StartupError(`MAX_CONTEXT=${config.maxContext} exceeds the model's max_position_embeddings (${args.max_seq_len})`);
  }
  const headDim = (configJson as { head_dim?: number }).head_dim ?? args.dim / args.n_heads;
  const tokenizerPath = join(dir, "tokenizer.json");
  return {
    dir,
    name: config.modelName ?? basename(dir),
    dtype,
    onnxFile,
    args,
    kvShape: { layers: args.n_layers, kvHeads: args.n_kv_heads, headDim },
    maxContext: config.maxContext > 0 ? config.maxContext : args.max_seq_len,
    stopTokens,
    tokenizerFile: existsSync(tokenizerPath) ? tokenizerPath : null,
  };
}

/** Where onnxruntime-node keeps its native libraries for this platform. */
export function onnxruntimeBinDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("onnxruntime-node/package.json");
  return join(dirname(pkg), "bin", "napi-v6", process.platform, process.arch);
}

function sharedLibraryVisible(name: string): boolean {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
  ];
  if (dirs.some((d) => existsSync(join(d, name)))) return true;
  try {
    return execFileSync("ldconfig", ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).includes(name);
  } catch {
    return false;
  }
}

/** Throws when the device cannot work here, saying what is missing and how to fix it. */
export function checkDevice(device: Device): void {
  if (device === "cpu") return;
  if (process.platform !== "linux") {
    throw new StartupError(`DEVICE=${device} is supported by this worker on Linux only (platform: ${process.platform})`);
  }
  if (device === "cuda") {
    if (process.arch !== "x64") throw new StartupError("DEVICE=cuda needs linux/x64 (onnxruntime-node ships no CUDA EP for arm64)");
    const bin = onnxruntimeBinDir();
    const needed = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"];
    const missing = needed.filter((f) => !existsSync(join(bin, f)));
    if (missing.length > 0) {
      throw new StartupError(
        `DEVICE=cuda needs onnxruntime-node's CUDA provider libraries, missing from ${bin}: ${missing.join(", ")}. ` +
          "They are not in the npm package (its postinstall downloads them from NuGet, skipped with ONNXRUNTIME_NODE_INSTALL=skip). " +
          "Copy the 1.30.0 files from onnxruntime-linux-x64-gpu-1.30.0.tgz there (CUDA 12 + cuDNN 9 required), or use DEVICE=webgpu.",
      );
    }
    return;
  }
  // webgpu: onnxruntime-node's Linux build carries Dawn, which loads Vulkan at run time.
  if (process.arch !== "x64") throw new StartupError("DEVICE=webgpu needs linux/x64 (the arm64 onnxruntime-node has no WebGPU EP)");
  if (!sharedLibraryVisible("libvulkan.so.1")) {
    throw new StartupError(
      "DEVICE=webgpu needs the Vulkan loader libvulkan.so.1 (Debian/Ubuntu package libvulkan1) and the GPU driver's Vulkan ICD; " +
        "neither LD_LIBRARY_PATH nor the system library paths have libvulkan.so.1",
    );
  }
}
