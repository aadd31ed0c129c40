/**
 * Hugging Face Llama checkpoint folders on disk (Node): `config.json` plus `model.safetensors`, or
 * shards listed in `model.safetensors.index.json`.
 *
 * Reading is lazy: opening parses the JSON headers only, and each `read(name)` reads just that
 * tensor's bytes by file offset, so a model larger than memory can be streamed tensor by tensor.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { type FileHandle, mkdir, open, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { BOS_TOKEN_ID, fromHfConfig, HF_EOS_TOKEN_IDS, ModelConfigError, toHfConfig } from "./config.js";
import {
  decodeFloats,
  DTYPE_BYTES,
  encodeFloats,
  type FloatDtype,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPE,
  safetensorsHeaderLength,
  type SafetensorsEntry,
  serializeSafetensorsHeader,
} from "./safetensors.js";
import { formatShape, numel, sameShape, type WeightSource } from "./tensor.js";
import { isIgnorableCheckpointTensor, llamaWeightShapes, weightSourceFrom } from "./weights.js";

export const CONFIG_FILE = "config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** Largest single `readSync` (Node limits one read to 2 GiB). */
const READ_CHUNK = 1 << 30;

function readRange(path: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const fd = openSync(path, "r");
  try {
    for (let done = 0; done < length; ) {
      const n = readSync(fd, out, done, Math.min(READ_CHUNK, length - done), position + done);
      if (n === 0) throw new CheckpointError(`${path}: unexpected end of file at byte ${position + done}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

function readSafetensorsHeader(path: string) {
  const fd = openSync(path, "r");
  let size: number;
  try {
    size = fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
  const length = safetensorsHeaderLength(readRange(path, 0, Math.min(8, size)));
  return parseSafetensorsHeader(readRange(path, 0, 8 + length), size);
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new CheckpointError(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${what}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

const indexSchema = z.looseObject({ weight_map: z.record(z.string(), z.string()) });

/** Which safetensors files hold the weights, and (for sharded checkpoints) which tensor is where. */
async function locateWeightFiles(dir: string): Promise<{ files: string[]; weightMap?: Record<string, string> }> {
  const entries = await readdir(dir);
  if (entries.includes(INDEX_FILE)) {
    const parsed = indexSchema.safeParse(await readJson(join(dir, INDEX_FILE), INDEX_FILE));
    if (!parsed.success) throw new CheckpointError(`${INDEX_FILE}: expected {"weight_map": {tensor name: file name}}`);
    const weightMap = parsed.data.weight_map;
    for (const file of Object.values(weightMap))
      if (basename(file) !== file || !file.endsWith(".safetensors"))
        throw new CheckpointError(`${INDEX_FILE}: weight_map names ${JSON.stringify(file)}, expected a .safetensors file in the same folder`);
    return { files: [...new Set(Object.values(weightMap))].sort(), weightMap };
  }
  if (entries.includes(SINGLE_FILE)) return { files: [SINGLE_FILE] };
  const found = entries.filter((e) => e.endsWith(".safetensors"));
  if (found.length === 1) return { files: found };
  throw new CheckpointError(
    found.length === 0
      ? `${dir}: no ${SINGLE_FILE} or ${INDEX_FILE}`
      : `${dir}: several .safetensors files but no ${INDEX_FILE} (${found.join(", ")})`,
  );
}

export interface CheckpointInfo {
  dir: string;
  files: string[];
  /** Stored dtype of each weight (F32, F16, BF16). */
  dtypes: Map<string, string>;
}

/**
 * Opens a checkpoint folder: `config.json` → `ModelArgs`, and every weight located, shape- and
 * dtype-checked up front (so a bad checkpoint fails at open with the tensor's name, not mid-build).
 */
export async function openHfCheckpoint(dir: string): Promise<WeightSource & { readonly info: CheckpointInfo }> {
  let args;
  try {
    args = fromHfConfig(await readJson(join(dir, CONFIG_FILE), CONFIG_FILE));
  } catch (e) {
    if (e instanceof ModelConfigError) throw new CheckpointError(`${CONFIG_FILE}: ${e.message}`);
    throw e;
  }
  const { files, weightMap } = await locateWeightFiles(dir);
  const located = new Map<string, { path: string; dataOffset: number; entry: SafetensorsEntry }>();
  for (const file of files) {
    const path = join(dir, file);
    let header;
    try {
      header = readSafetensorsHeader(path);
    } catch (e) {
      throw new CheckpointError(`${file}: ${(e as Error).message}`);
    }
    for (const entry of header.tensors) {
      if (weightMap && weightMap[entry.name] !== file) {
        if (isIgnorableCheckpointTensor(entry.name, args)) continue;
        throw new CheckpointError(`${file}: holds ${JSON.stringify(entry.name)}, which ${INDEX_FILE} assigns to ${weightMap[entry.name] ?? "no file"}`);
      }
      if (located.has(entry.name)) throw new CheckpointError(`${file}: tensor ${JSON.stringify(entry.name)} appears in more than one file`);
      located.set(entry.name, { path, dataOffset: header.dataOffset, entry });
    }
  }

  const expected = llamaWeightShapes(args);
  const expectedNames = new Set(expected.map((w) => w.name));
  for (const name of located.keys())
    if (!expectedNames.has(name) && !isIgnorableCheckpointTensor(name, args))
      throw new CheckpointError(`unexpected tensor ${JSON.stringify(name)} (not part of a Llama model with this config.json)`);
  const dtypes = new Map<string, string>();
  for (const { name, shape } of expected) {
    const at = located.get(name);
    if (!at) throw new CheckpointError(`missing tensor ${JSON.stringify(name)}`);
    if (!sameShape(at.entry.shape, shape))
      throw new CheckpointError(`tensor ${JSON.stringify(name)}: shape ${formatShape(at.entry.shape)}, config.json implies ${formatShape(shape)}`);
    if (!["F32", "F16", "BF16"].includes(at.entry.dtype))
      throw new CheckpointError(`tensor ${JSON.stringify(name)}: dtype ${at.entry.dtype} is not supported (F32, F16, BF16)`);
    dtypes.set(name, at.entry.dtype);
  }

  const source = weightSourceFrom(args, (name, shape) => {
    const { path, dataOffset, entry } = located.get(name)!;
    const bytes = readRange(path, dataOffset + entry.begin, entry.end - entry.begin);
    return { shape, data: decodeFloats(bytes, entry.dtype, numel(shape)) };
  });
  return Object.assign(source, { info: { dir, files, dtypes } });
}

export interface WriteCheckpointOptions {
  /** Stored dtype; default float32 (exact). */
  dtype?: FloatDtype;
  /** Split into shards of at most this many bytes (a larger single tensor gets its own shard). */
  shardBytes?: number;
  /** Called after each tensor is written. */
  onProgress?: (written: number, total: number, name: string) => void;
}

/** Writes all of `bytes`, in chunks below Node's 2 GiB per-call limit. */
async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(READ_CHUNK, bytes.length - done));
    done += bytesWritten;
  }
}

function shardFileName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, "0");
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/**
 * Writes `config.json`, `generation_config.json` and the weights as `model.safetensors`, or as shards
 * plus `model.safetensors.index.json` when they exceed `shardBytes`. Tensors are read from the source
 * and written one at a time.
 */
export async function writeHfCheckpoint(dir: string, ws: WeightSource, opts: WriteCheckpointOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? "float32";
  const stored = SAFETENSORS_DTYPE[dtype];
  if (!stored) throw new RangeError(`dtype: expected float32, float16 or bfloat16, got ${JSON.stringify(dtype)}`);
  if (opts.shardBytes !== undefined && !(Number.isSafeInteger(opts.shardBytes) && opts.shardBytes > 0))
    throw new RangeError(`shardBytes: expected a positive integer, got ${opts.shardBytes}`);
  const tensors = ws.names().map((name) => ({ name, shape: ws.shape(name) }));
  const bytesOf = (shape: number[]) => numel(shape) * DTYPE_BYTES[stored]!;
  const totalBytes = tensors.reduce((s, t) => s + bytesOf(t.shape), 0);

  // Greedy sharding in model order, as transformers' save_pretrained does.
  const shards: Array<typeof tensors> = [[]];
  let current = 0;
  for (const t of tensors) {
    const size = bytesOf(t.shape);
    if (opts.shardBytes !== undefined && current > 0 && current + size > opts.shardBytes) {
      shards.push([]);
      current = 0;
    }
    shards.at(-1)!.push(t);
    current += size;
  }

  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, CONFIG_FILE), JSON.stringify(toHfConfig(ws.args, { torch_dtype: dtype }), null, 2) + "\n");
  await writeFile(
    join(dir, GENERATION_CONFIG_FILE),
    JSON.stringify({ bos_token_id: BOS_TOKEN_ID, eos_token_id: [...HF_EOS_TOKEN_IDS], do_sample: true, temperature: 0.6, top_p: 0.9 }, null, 2) + "\n",
  );

  const weightMap: Record<string, string> = {};
  let written = 0;
  for (const [i, shard] of shards.entries()) {
    const file = shards.length === 1 ? SINGLE_FILE : shardFileName(i, shards.length);
    const { bytes: header } = serializeSafetensorsHeader(
      shard.map((t) => ({ name: t.name, dtype: stored, shape: t.shape })),
      { format: "pt" },
    );
    const handle = await open(join(dir, file), "w");
    try {
      await writeAll(handle, header);
      for (const t of shard) {
        const tensor = ws.read(t.name);
        if (!sameShape(tensor.shape, t.shape))
          throw new CheckpointError(`tensor ${JSON.stringify(t.name)}: source returned shape ${formatShape(tensor.shape)}, announced ${formatShape(t.shape)}`);
        await writeAll(handle, encodeFloats(tensor.data, dtype));
        weightMap[t.name] = file;
        opts.onProgress?.(++written, tensors.length, t.name);
      }
    } finally {
      await handle.close();
    }
  }
  if (shards.length > 1) {
    const index = { metadata: { total_size: totalBytes }, weight_map: weightMap };
    await writeFile(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + "\n");
  }
}
