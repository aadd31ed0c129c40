/**
 * The model runner: loads a model folder with transformers.js and drives the decoder one forward pass at a
 * time, owning the KV state.
 *
 * Why not `model.generate()`: generate re-derives settings from generation_config (max_length 20, top_k 50,
 * no top_p), samples in its own code, cannot report logprobs, cannot crop a cache to a common prefix, and
 * hides how many positions it feeds. Driving `model.forward` (transformers.js' own decoder forward, which
 * still fills position_ids, num_logits_to_keep, the empty initial cache and WebGPU output placement) keeps the
 * loader and graph handling of transformers.js while every sampling and caching decision is ours.
 */
import { AutoModelForCausalLM, Tensor, env, type PreTrainedModel } from "@huggingface/transformers";
import { float16ToFloat32Array } from "../model/safetensors.js";
import { batchMask, extractRow, mergeRows, type BatchLayout } from "./batch-kv.js";
import type { Device } from "./config.js";
import type { Disposable } from "./kv-lru.js";
import type { ModelFolder } from "./model-folder.js";
import { StartupError } from "./model-folder.js";
import { cpuSessionOptions, type CpuSettings } from "./cpu-session-options.js";
import { copyHeadRows } from "./kv-rows.js";

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2, uint8: 1, int8: 1 };

/** Tensors a forward pass may return: a small view of transformers.js' Tensor. */
type KvTensor = Tensor;

/**
 * The KV cache of one sequence: `tokens` are the positions whose keys/values it holds. Mutated by
 * `forward`/`crop`, so it belongs to one request at a time.
 */
export class KvState implements Disposable {
  tokens: number[] = [];
  /** `past_key_values.{i}.key|value` → tensor [1, kvHeads, tokens.length, headDim]; null before the first pass. */
  past: Record<string, KvTensor> | null = null;
  private disposed = false;

  constructor(private readonly onDispose: () => void) {}

  get bytes(): number {
    if (!this.past) return 0;
    let total = 0;
    for (const t of Object.values(this.past)) total += t.size * (BYTES_PER_ELEMENT[t.type] ?? 4);
    return total;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the tensors (GPU buffers on WebGPU). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.past) for (const t of Object.values(this.past)) t.dispose();
    this.past = null;
    this.tokens = [];
    this.onDispose();
  }
}

export interface RunnerInfo {
  model: string;
  device: Device;
  dtype: string;
  vocabSize: number;
  maxContext: number;
}

function int64Tensor(values: readonly number[] | BigInt64Array, dims: number[]): Tensor {
  const data = values instanceof BigInt64Array ? values : BigInt64Array.from(values, (v) => BigInt(v));
  return new Tensor("int64", data, dims);
}

/** Copies the first `keep` positions of a [1, heads, T, headDim] CPU tensor. */
function cropTensor(t: KvTensor, keep: number): KvTensor {
  const [batch, heads, length, headDim] = t.dims as [number, number, number, number];
  if (batch !== 1) throw new Error(`cropTensor: batch ${batch} (only single sequences are cached)`);
  if (t.location !== "cpu") throw new Error(`cropTensor: the tensor is on ${t.location}, not the CPU`);
  const out = copyHeadRows(t.data as Float32Array | Uint16Array, heads, length, headDim, keep, keep);
  return new Tensor(t.type as "float32", out as Float32Array, [1, heads, keep, headDim]);
}

/** A CPU tensor's values as numbers (float16 bits decoded). */
function asFloats(t: KvTensor): ArrayLike<number> {
  return t.type === "float16" ? float16ToFloat32Array(t.data as Uint16Array) : (t.data as Float32Array);
}

export class ModelRunner {
  private liveStates = 0;

  private constructor(
    private readonly model: PreTrainedModel,
    readonly info: RunnerInfo,
  ) {}

  static async load(folder: ModelFolder, device: Device, cpu: CpuSettings): Promise<ModelRunner> {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.useFSCache = false;
    const sessionOptions = { logSeverityLevel: 3 as const, ...cpuSessionOptions(device, cpu) };
    let model: PreTrainedModel;
    try {
      model = await AutoModelForCausalLM.from_pretrained(folder.dir, {
        device,
        dtype: folder.dtype,
        local_files_only: true,
        session_options: sessionOptions,
      });
    } catch (error) {
      throw new StartupError(
        `loading ${folder.onnxFile} on ${device} failed: ${(error as Error).message}` +
          (device === "webgpu" ? " (WebGPU needs libvulkan.so.1 and the NVIDIA Vulkan ICD; see runtime notes §7)" : ""),
      );
    }
    return new ModelRunner(model, {
      model: folder.name,
      device,
      dtype: folder.dtype,
      vocabSize: folder.args.vocab_size,
      maxContext: folder.maxContext,
    });
  }

  /** KV caches allocated and not yet disposed. */
  get liveKvStates(): number {
    return this.liveStates;
  }

  newState(): KvState {
    this.liveStates++;
    return new KvState(() => this.liveStates--);
  }

  /**
   * Runs `tokens` after the state's cached positions, appends them to the state and returns the logits of the
   * last position (a fresh float32 copy the caller may modify).
   */
  async forward(state: KvState, tokens: readonly number[]): Promise<Float32Array> {
    if (state.isDisposed) throw new Error("forward on a disposed KV state");
    if (tokens.length === 0) throw new Error("forward needs at least one token");
    const past = state.tokens.length;
    const total = past + tokens.length;
    const inputs: Record<string, unknown> = {
      input_ids: int64Tensor(tokens, [1, tokens.length]),
      attention_mask: int64Tensor(new BigInt64Array(total).fill(1n), [1, total]),
      // Only the last position's logits are needed (ignored by graphs without this input).
      num_logits_to_keep: new Tensor("int64", BigInt64Array.of(1n), []),
    };
    if (state.past) inputs.past_key_values = state.past;
    const outputs = (await this.model.forward(inputs)) as Record<string, KvTensor>;

    const next: Record<string, KvTensor> = {};
    for (const [name, tensor] of Object.entries(outputs)) {
      if (name.startsWith("present")) next[name.replace("present", "past_key_values")] = tensor;
    }
    if (state.past) for (const [name, old] of Object.entries(state.past)) if (next[name] !== old) old.dispose();
    state.past = next;
    state.tokens.push(...tokens);

    const logitsTensor = outputs.logits!;
    const [, rows, vocab] = logitsTensor.dims as [number, number, number];
    let logits: Float32Array;
    if (logitsTensor.type === "float32") {
      logits = (logitsTensor.data as Float32Array).slice((rows - 1) * vocab, rows * vocab);
    } else {
      logits = logitsTensor.slice(null, -1, null).to("float32").data as Float32Array;
    }
    logitsTensor.dispose();
    return logits;
  }

  /**
   * One decode step for several sequences (one token each) as a single batched forward pass; afterwards each
   * state holds its own contiguous cache again, so caching, cropping and eviction see no difference. CPU
   * tensors only (WebGPU caches would have to be downloaded to be merged).
   */
  async forwardBatch(states: readonly KvState[], tokens: readonly number[], layout: BatchLayout): Promise<Float32Array[]> {
    const batch = states.length;
    if (batch !== tokens.length || batch === 0) throw new Error("forwardBatch: one token per state");
    const lengths = states.map((s) => s.tokens.length);
    const pasts = states.map((s) => {
      if (s.isDisposed || !s.past) throw new Error("forwardBatch needs prefilled, live states");
      return s.past;
    });
    const merged: Record<string, KvTensor> = {};
    let width = 0;
    for (const name of Object.keys(pasts[0]!)) {
      const first = pasts[0]![name]!;
      const [, heads, , headDim] = first.dims as [number, number, number, number];
      const rows = pasts.map((p) => {
        const t = p[name]!;
        if (t.location !== "cpu") throw new Error("forwardBatch: KV tensors must be on the CPU");
        return t.data as Float32Array | Uint16Array;
      });
      const m = mergeRows(rows, lengths, heads, headDim);
      width = m.width;
      merged[name] = new Tensor(first.type as "float32", m.data as Float32Array, [batch, heads, width, headDim]);
    }
    const outputs = (await this.model.forward({
      input_ids: int64Tensor(tokens, [batch, 1]),
      attention_mask: new Tensor("int64", batchMask(lengths, width), [batch, width + 1]),
      num_logits_to_keep: new Tensor("int64", BigInt64Array.of(1n), []),
      past_key_values: merged,
    })) as Record<string, KvTensor>;

    states.forEach((state, b) => {
      const next: Record<string, KvTensor> = {};
      for (const [name, present] of Object.entries(outputs)) {
        if (!name.startsWith("present")) continue;
        const [, heads, , headDim] = present.dims as [number, number, number, number];
        const row = extractRow(present.data as Float32Array | Uint16Array, b, lengths[b]!, width, heads, headDim, layout);
        next[name.replace("present", "past_key_values")] = new Tensor(present.type as "float32", row as Float32Array, [1, heads, lengths[b]! + 1, headDim]);
      }
      for (const old of Object.values(state.past!)) old.dispose();
      state.past = next;
      state.tokens.push(tokens[b]!);
    });
    for (const t of Object.values(merged)) t.dispose();

    let logits = outputs.logits!;
    if (logits.type !== "float32") logits = logits.to("float32");
    const [, rows, vocab] = logits.dims as [number, number, number];
    const data = logits.data as Float32Array;
    const result = states.map((_, b) => data.slice((b * rows + rows - 1) * vocab, (b * rows + rows) * vocab));
    for (const [name, t] of Object.entries(outputs)) if (name.startsWith("present") || name === "logits") t.dispose();
    return result;
  }

  /**
   * Finds how the loaded graph lays out a batched step's new keys/values (see batch-kv.ts) by comparing two
   * batched steps of rows of different lengths with one-row steps: logits and caches must agree. null when
   * neither layout reproduces them (batching is then not used).
   */
  async probeBatchLayout(): Promise<BatchLayout | null> {
    const vocab = this.info.vocabSize;
    const prompts = [
      [1, 2, 3].map((i) => (i * 7919) % vocab),
      [4, 5, 6, 7, 8, 9].map((i) => (i * 7919) % vocab),
    ];
    const steps = [(11 * 7919) % vocab, (12 * 7919) % vocab];
    const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      if (a.length !== b.length) return false;
      let scale = 1;
      for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
      for (let i = 0; i < b.length; i++) if (!(Math.abs(a[i]! - b[i]!) <= 1e-3 * scale)) return false;
      return true;
    };
    const singles = prompts.map(() => this.newState());
    const expected: Float32Array[][] = [];
    try {
      for (const [i, p] of prompts.entries()) {
        await this.forward(singles[i]!, p);
        expected.push([await this.forward(singles[i]!, [steps[0]!]), await this.forward(singles[i]!, [steps[1]!])]);
      }
      if (Object.values(singles[0]!.past!).some((t) => t.location !== "cpu")) return null;
      for (const layout of ["seqlens", "append"] as const) {
        const rows = prompts.map(() => this.newState());
        try {
          for (const [i, p] of prompts.entries()) await this.forward(rows[i]!, p);
          let ok = true;
          for (const [k, token] of steps.entries()) {
            const got = await this.forwardBatch(rows, [token, token], layout);
            ok &&= got.every((l, i) => close(l, expected[i]![k]!));
          }
          ok &&= rows.every((r, i) =>
            Object.entries(r.past!).every(([name, t]) => close(asFloats(t), asFloats(singles[i]!.past![name]!))),
          );
          if (ok) return layout;
        } finally {
          for (const r of rows) r.dispose();
        }
      }
      return null;
    } finally {
      for (const s of singles) s.dispose();
    }
  }

  /**
   * Whether `crop` can shorten this cache in place: only CPU tensors. A WebGPU cache would have to be
   * downloaded and uploaded again, which costs about as much as recomputing it and goes through a native
   * download path that is not worth the risk; such a mismatching cache is recomputed instead.
   */
  canCrop(state: KvState): boolean {
    return state.past === null || Object.values(state.past).every((t) => t.location === "cpu");
  }

  /** Keeps only the first `length` cached positions (CPU tensors; see canCrop). */
  async crop(state: KvState, length: number): Promise<void> {
    if (length > state.tokens.length || length < 0) throw new Error(`crop to ${length} of ${state.tokens.length}`);
    if (length === state.tokens.length) return;
    if (!state.past) return;
    const cropped: Record<string, KvTensor> = {};
    for (const [name, t] of Object.entries(state.past)) cropped[name] = cropTensor(t, length);
    for (const t of Object.values(state.past)) t.dispose();
    state.past = cropped;
    state.tokens.length = length;
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}
