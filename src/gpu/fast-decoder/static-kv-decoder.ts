// Greedy decoding of a static-KV graph (src/model/onnx/gpu-graph.ts, "static-kv" interface)
// driven directly through onnxruntime-node, without transformers.js's generate loop.
//
// Why not transformers.js: its sessions set `preferredOutputLocation: "gpu-buffer"` for the
// caches, which makes onnxruntime-node 1.30 run through IO binding, where a preallocated output is
// ignored (the binding allocates a new one each run). So every step gets fresh, growing present
// buffers, past and present can never be one buffer, and WebGPU graph capture is impossible. Its
// loop also downloads the full logits row (128k values) and takes the argmax in JavaScript.
//
// Here, on WebGPU, the state lives in device buffers allocated once: per layer a key and a value
// cache of fixed capacity, the current token id and seqlens_k. Each run binds them as inputs and as
// preallocated outputs (sessions without preferredOutputLocation take that path), so
// GroupQueryAttention writes new rows in place and the graph writes its own next token and length.
// That makes every decode run identical: with `graphCapture`, onnxruntime records the kernels of
// one step and replays them; a tiny second session reads back 8 bytes per step.
//
// On the CPU EP (tests, local benchmarks) the same graph runs with host tensors.
import * as ort from "onnxruntime-node";
import { DataType } from "../../model/onnx/onnx-proto.js";
import { ALLOCATOR_INPUTS, readbackModel, stateAllocatorModel, type DecoderStateShape } from "./helper-graphs.js";

export type FastDecoderDevice = "webgpu" | "cpu";

export interface StaticKvDecoderOptions {
  /** Path of a `*.static-kv.onnx` graph (buildModelFolder with `staticKv: true`). */
  modelPath: string;
  device: FastDecoderDevice;
  /** KV-cache capacity in tokens (prompt + generated); fixed for the decoder's life. */
  capacity: number;
  /** WebGPU: replay the decode step with onnxruntime's graph capture (default true on webgpu). */
  graphCapture?: boolean;
  /** Also download the logits of every run (verification; forces graphCapture off). */
  logits?: boolean;
  /** Extra session options for the model sessions (e.g. enableProfiling). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Host-side time spent per phase, accumulated since the last `resetStats()`. */
export interface DecoderStats {
  steps: number;
  /** Milliseconds inside the model session's run (the device work is awaited only by the readback). */
  runMs: number;
  /** Milliseconds reading back token and length (includes waiting for the device). */
  readbackMs: number;
}

export interface DecodeResult {
  token: number;
  /** Logits of the last position as float32, when the decoder was opened with `logits: true`. */
  logits?: Float32Array;
}

const GRAPH_CAPTURE_KEY = "ep.webgpuexecutionprovider.enableGraphCapture";

function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function logitsToFloat32(t: ort.Tensor): Float32Array {
  if (t.type === "float32") return Float32Array.from(t.data as Float32Array);
  if (t.type === "float16") return Float32Array.from(t.data as Uint16Array, float16ToFloat32);
  throw new Error(`unexpected logits type ${t.type}`);
}

/** Reads the state shape from the graph's input metadata (past_key_values.0.key: [1, kvH, capacity, hd]). */
function stateShape(session: ort.InferenceSession): DecoderStateShape {
  const names = session.inputNames;
  for (const required of ["input_ids", "seqlens_k", "past_key_values.0.key"]) {
    if (!names.includes(required)) throw new Error(`not a static-KV decoder graph: it has no input ${required} (inputs: ${names.slice(0, 4).join(", ")}, ...)`);
  }
  const meta = session.inputMetadata.find((m) => m.name === "past_key_values.0.key");
  if (!meta?.isTensor) throw new Error("past_key_values.0.key is not a tensor input");
  const [, kvHeads, , headDim] = meta.shape;
  if (typeof kvHeads !== "number" || typeof headDim !== "number") throw new Error(`past_key_values.0.key needs concrete kv heads and head_dim, has [${meta.shape.join(", ")}]`);
  const nLayers = names.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
  const kvType = meta.type === "float16" ? DataType.FLOAT16 : meta.type === "float32" ? DataType.FLOAT : undefined;
  if (kvType === undefined) throw new Error(`unsupported cache type ${meta.type}`);
  return { nLayers, kvHeads, headDim, kvType };
}

export class StaticKvDecoder {
  private length = 0;
  private hostToken = 0;
  readonly stats: DecoderStats = { steps: 0, runMs: 0, readbackMs: 0 };
  /** Executions of the graph during the run that captured it (onnxruntime may run it twice); undefined without capture. */
  captureExecutions: number | undefined;

  private constructor(
    private readonly o: Required<Pick<StaticKvDecoderOptions, "device" | "capacity" | "graphCapture" | "logits">>,
    private readonly shape: DecoderStateShape,
    private readonly prefillSession: ort.InferenceSession,
    private readonly decodeSession: ort.InferenceSession,
    private readonly readback: ort.InferenceSession | undefined,
    /** Caches, token and seqlens_k: device tensors on WebGPU, host tensors on the CPU. */
    private readonly state: Record<string, ort.Tensor>,
    private readonly allocator: ort.InferenceSession | undefined,
  ) {}

  static async open(options: StaticKvDecoderOptions): Promise<StaticKvDecoder> {
    const { modelPath, device, capacity } = options;
    if (device !== "webgpu" && device !== "cpu") throw new Error(`device: expected webgpu or cpu, got ${JSON.stringify(device)}`);
    if (!Number.isInteger(capacity) || capacity < 2) throw new Error(`capacity: expected an integer >= 2, got ${capacity}`);
    const logits = options.logits ?? false;
    const graphCapture = device === "webgpu" && !logits && (options.graphCapture ?? true);
    const base: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, ...options.sessionOptions, executionProviders: [device] };
    const prefillSession = await ort.InferenceSession.create(modelPath, base);
    const shape = stateShape(prefillSession);
    // Graph capture replays whatever the first captured run did, so prompts (any length) run in a
    // second session of the same graph without capture. Both hold the weights: 2x device memory.
    const decodeSession = graphCapture ? await ort.InferenceSession.create(modelPath, { ...base, extra: { ...(base.extra as object), [GRAPH_CAPTURE_KEY]: "1" } }) : prefillSession;

    let state: Record<string, ort.Tensor>;
    let allocator: ort.InferenceSession | undefined;
    let readback: ort.InferenceSession | undefined;
    if (device === "webgpu") {
      const helper: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, executionProviders: ["webgpu"], graphOptimizationLevel: "disabled" };
      allocator = await ort.InferenceSession.create(stateAllocatorModel(shape), { ...helper, preferredOutputLocation: "gpu-buffer" });
      const shapeTensor = (dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(dims, BigInt), [dims.length]);
      state = await allocator.run({
        [ALLOCATOR_INPUTS.kvShape]: shapeTensor([1, shape.kvHeads, capacity, shape.headDim]),
        [ALLOCATOR_INPUTS.tokenShape]: shapeTensor([1, 1]),
        [ALLOCATOR_INPUTS.lengthShape]: shapeTensor([1]),
      });
      readback = await ort.InferenceSession.create(readbackModel(), helper);
    } else {
      state = { input_ids: new ort.Tensor("int32", new Int32Array(1), [1, 1]), seqlens_k: new ort.Tensor("int32", new Int32Array(1), [1]) };
      const elements = shape.kvHeads * capacity * shape.headDim;
      for (let i = 0; i < shape.nLayers; i++) {
        for (const part of ["key", "value"]) {
          const data = shape.kvType === DataType.FLOAT16 ? new Uint16Array(elements) : new Float32Array(elements);
          state[`past_key_values.${i}.${part}`] = new ort.Tensor(shape.kvType === DataType.FLOAT16 ? "float16" : "float32", data, [1, shape.kvHeads, capacity, shape.headDim]);
        }
      }
    }
    const decoder = new StaticKvDecoder({ device, capacity, graphCapture, logits }, shape, prefillSession, decodeSession, readback, state, allocator);
    if (graphCapture) await decoder.capture();
    return decoder;
  }

  /** Tokens in the cache. */
  get cachedTokens(): number {
    return this.length;
  }

  get graphCaptured(): boolean {
    return this.o.graphCapture;
  }

  resetStats(): void {
    this.stats.steps = 0;
    this.stats.runMs = 0;
    this.stats.readbackMs = 0;
  }

  /**
   * Runs `tokens` after the first `keep` cached tokens (0: a new sequence; the rest of the cache is
   * overwritten) and returns the greedy next token, which becomes the input of the next `step()`.
   */
  async prefill(tokens: readonly number[], keep = 0): Promise<DecodeResult> {
    if (tokens.length === 0) throw new Error("prefill: tokens must not be empty");
    if (!Number.isInteger(keep) || keep < 0 || keep > this.length) throw new Error(`prefill: keep must be an integer in [0, ${this.length}], got ${keep}`);
    const total = keep + tokens.length;
    if (total >= this.o.capacity) throw new Error(`prefill: ${total} tokens leave no room in a cache of capacity ${this.o.capacity}`);
    const feeds: Record<string, ort.Tensor> = {
      ...this.caches(),
      input_ids: new ort.Tensor("int32", Int32Array.from(tokens), [1, tokens.length]),
      seqlens_k: new ort.Tensor("int32", Int32Array.of(total - 1), [1]),
    };
    return this.run(this.prefillSession, feeds, total);
  }

  /** Feeds the last returned token and returns the next greedy token. */
  async step(): Promise<DecodeResult> {
    if (this.length === 0) throw new Error("step: call prefill first");
    if (this.length + 1 >= this.o.capacity) throw new Error(`step: the cache (capacity ${this.o.capacity}) is full`);
    const feeds: Record<string, ort.Tensor> = { ...this.caches(), input_ids: this.state.input_ids, seqlens_k: this.state.seqlens_k };
    if (this.o.device === "cpu") {
      feeds.input_ids = new ort.Tensor("int32", Int32Array.of(this.hostToken), [1, 1]);
      feeds.seqlens_k = new ort.Tensor("int32", Int32Array.of(this.length), [1]);
    }
    return this.run(this.decodeSession, feeds, this.length + 1);
  }

  async dispose(): Promise<void> {
    for (const t of Object.values(this.state)) if (t.location === "gpu-buffer") t.dispose();
    const sessions = new Set([this.prefillSession, this.decodeSession, this.readback, this.allocator]);
    for (const s of sessions) await s?.release();
  }

  private caches(): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    for (let i = 0; i < this.shape.nLayers; i++) {
      out[`past_key_values.${i}.key`] = this.state[`past_key_values.${i}.key`];
      out[`past_key_values.${i}.value`] = this.state[`past_key_values.${i}.value`];
    }
    return out;
  }

  /** Outputs bound to the state buffers (WebGPU) or left to onnxruntime (CPU). */
  private fetches(): Record<string, ort.Tensor | null> {
    const f: Record<string, ort.Tensor | null> = {};
    const device = this.o.device === "webgpu";
    for (let i = 0; i < this.shape.nLayers; i++) {
      f[`present.${i}.key`] = device ? this.state[`past_key_values.${i}.key`] : null;
      f[`present.${i}.value`] = device ? this.state[`past_key_values.${i}.value`] : null;
    }
    f.next_token = device ? this.state.input_ids : null;
    f.next_seqlens_k = device ? this.state.seqlens_k : null;
    if (this.o.logits) f.logits = null;
    return f;
  }

  private async run(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, expectedLength: number): Promise<DecodeResult> {
    const t0 = performance.now();
    const out = await session.run(feeds, this.fetches());
    const t1 = performance.now();
    let token: number;
    let length: number;
    if (this.readback) {
      const r = await this.readback.run({ next_token: this.state.input_ids, seqlens_k: this.state.seqlens_k });
      token = (r.token.data as Int32Array)[0];
      length = (r.seqlens.data as Int32Array)[0];
    } else {
      token = (out.next_token.data as Int32Array)[0];
      length = (out.next_seqlens_k.data as Int32Array)[0];
      for (let i = 0; i < this.shape.nLayers; i++) {
        this.state[`past_key_values.${i}.key`] = out[`present.${i}.key`];
        this.state[`past_key_values.${i}.value`] = out[`present.${i}.value`];
      }
    }
    this.stats.runMs += t1 - t0;
    this.stats.readbackMs += performance.now() - t1;
    this.stats.steps++;
    // The graph advances seqlens_k itself; a length other than the expected one means a run was
    // skipped or repeated (e.g. a capture that executed twice), and every later token would be wrong.
    if (length !== expectedLength) throw new Error(`decoder state out of step: cache length ${length}, expected ${expectedLength}`);
    this.length = length;
    this.hostToken = token;
    return this.o.logits ? { token, logits: logitsToFloat32(out.logits) } : { token };
  }

  /**
   * Makes onnxruntime capture the decode graph now, on a throwaway one-token sequence: the
   * capturing run may execute the graph more than once, which would skip a token of a real sequence.
   */
  private async capture(): Promise<void> {
    await this.prefill([0]);
    const feeds: Record<string, ort.Tensor> = { ...this.caches(), input_ids: this.state.input_ids, seqlens_k: this.state.seqlens_k };
    await this.decodeSession.run(feeds, this.fetches());
    const r = await this.readback!.run({ next_token: this.state.input_ids, seqlens_k: this.state.seqlens_k });
    this.captureExecutions = (r.seqlens.data as Int32Array)[0] - 1;
    this.length = 0;
  }
}
