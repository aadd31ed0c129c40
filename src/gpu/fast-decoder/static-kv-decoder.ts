// Greedy decoding of a static-KV graph (src/model/onnx/gpu-graph.ts, "static-kv" interface)
// driven directly through onnxruntime-node, without transformers.js's generate loop.
//
// Why not transformers.js: its sessions set `preferredOutputLocation: "gpu-buffer"` for the
// caches, which makes onnxruntime-node 1.30 run through IO binding, where a preallocated output is
// ignored (the binding allocates a new one each run). So every step gets fresh present buffers one
// token longer than the past ones and copies the whole cache into them, which is why its decode
// slows down with context. Its loop also downloads the full logits row (128k values), converts it
// and takes the argmax in JavaScript, and waits for the device after every step.
//
// Here, on WebGPU, the state lives in device buffers allocated once: per layer a key and a value
// cache of fixed capacity, the current token id and two token rings. Each run binds them as inputs
// and as preallocated outputs (sessions without preferredOutputLocation take that path), so
// GroupQueryAttention writes new rows in place and the graph leaves the next token where the next
// step reads it. The host only passes lengths, so it can queue many steps without waiting for the
// device, and reads their tokens back in one transfer (`steps`).
//
// On the CPU EP the same graph runs with host tensors. There onnxruntime returns new present tensors each
// run and every run costs time in proportion to the cache's capacity (small model, 2 cores: 18 ms per step at
// 256 tokens, 50 ms at 8,192), so the host caches start small and double as the sequence grows, up to the
// capacity asked for: the cost then follows the sequence's length, as transformers.js' growing cache does.
import * as ort from "onnxruntime-node";
import { DataType } from "../../model/onnx/onnx-proto.js";
import { argmax } from "../../model/sampling.js";
import { copyHeadRows } from "../kv-rows.js";
import { floatValues } from "../ort-floats.js";
import { ALLOCATOR_INPUTS, STATE_RINGS, STATE_TOKEN, readbackModel, stateAllocatorModel, type DecoderStateShape } from "./helper-graphs.js";

export type FastDecoderDevice = "webgpu" | "cpu";

export interface StaticKvDecoderOptions {
  /** Path of a `*.static-kv.onnx` graph (buildModelFolder with `staticKv: true`). */
  modelPath: string;
  device: FastDecoderDevice;
  /**
   * KV-cache capacity in tokens (prompt + generated); fixed for the decoder's life. On WebGPU it is allocated
   * at open; on the CPU the caches grow to it as sequences need.
   */
  capacity: number;
  /**
   * Also download the logits of every run (verification; makes every step wait for the device). Without it,
   * single prefills and steps can still ask for them (`RunOptions.logits`).
   */
  logits?: boolean;
  /**
   * WebGPU EP options that onnxruntime-node accepts (e.g. `validationMode: "disabled"` skips
   * Dawn's per-call validation, which is host time on every dispatch).
   */
  webgpuOptions?: Record<string, string>;
  /** Extra session options for the model session (e.g. enableProfiling). */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Host-side time spent per phase, accumulated since the last `resetStats()`. */
export interface DecoderStats {
  /** Model runs (prefills and steps). */
  runs: number;
  /** Milliseconds inside the model session's run: encoding and submitting the device work. */
  runMs: number;
  readbacks: number;
  /** Milliseconds reading tokens back, including waiting for the device to finish the queued runs. */
  readbackMs: number;
}

/** Per-call options of `prefill` and `step`. */
export interface RunOptions {
  /**
   * Download this run's logits (the caller chooses the token on the host; the run waits for the device). The
   * result's token is then their argmax, taken on the host: the device's token is not read back.
   */
  logits?: boolean;
}

export interface StepOptions extends RunOptions {
  /**
   * The token to feed, chosen by the caller (e.g. sampled from the previous logits); default: the greedy
   * token the previous run left on the device.
   */
  token?: number;
}

export interface DecodeResult {
  token: number;
  /** Logits of the last position as float32, when the decoder was opened with `logits: true` or the call asked. */
  logits?: Float32Array;
}

const REQUIRED_INPUTS = ["input_ids", "seqlens_k", "total_sequence_length", "token_ring", "ring_slot", "past_key_values.0.key"];

/** Reads the state shape from the graph's input metadata (past_key_values.0.key: [1, kvH, capacity, hd]). */
function stateShape(session: ort.InferenceSession): DecoderStateShape {
  const names = session.inputNames;
  for (const required of REQUIRED_INPUTS) {
    if (!names.includes(required)) throw new Error(`not a static-KV decoder graph: it has no input ${required} (inputs: ${names.slice(0, 4).join(", ")}, ...)`);
  }
  const meta = session.inputMetadata.find((m) => m.name === "past_key_values.0.key");
  const ring = session.inputMetadata.find((m) => m.name === "token_ring");
  if (!meta?.isTensor || !ring?.isTensor) throw new Error("past_key_values.0.key and token_ring must be tensor inputs");
  const [, kvHeads, , headDim] = meta.shape;
  const [ringSize] = ring.shape;
  if (typeof kvHeads !== "number" || typeof headDim !== "number") throw new Error(`past_key_values.0.key needs concrete kv heads and head_dim, has [${meta.shape.join(", ")}]`);
  if (typeof ringSize !== "number") throw new Error(`token_ring needs a concrete length, has [${ring.shape.join(", ")}]`);
  const nLayers = names.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
  const kvType = meta.type === "float16" ? DataType.FLOAT16 : meta.type === "float32" ? DataType.FLOAT : undefined;
  if (kvType === undefined) throw new Error(`unsupported cache type ${meta.type}`);
  return { nLayers, kvHeads, headDim, kvType, ringSize };
}

const int32 = (values: number[], dims: number[]) => new ort.Tensor("int32", Int32Array.from(values), dims);

/** Rows the CPU caches start with (they double from there, up to the capacity). */
const INITIAL_CPU_ROWS = 256;

/** A zeroed host cache tensor [1, kv heads, rows, head dim]. */
function hostCache(shape: DecoderStateShape, rows: number): ort.Tensor {
  const elements = shape.kvHeads * rows * shape.headDim;
  const dims = [1, shape.kvHeads, rows, shape.headDim];
  return shape.kvType === DataType.FLOAT16 ? new ort.Tensor("float16", new Uint16Array(elements), dims) : new ort.Tensor("float32", new Float32Array(elements), dims);
}

/** `cache` copied into a zeroed cache of `rows` rows (each head's first `keep` rows). */
function grownHostCache(shape: DecoderStateShape, cache: ort.Tensor, rows: number, keep: number): ort.Tensor {
  const data = copyHeadRows(cache.data as Float32Array | Uint16Array, shape.kvHeads, cache.dims[2]!, shape.headDim, keep, rows);
  return new ort.Tensor(cache.type, data, [1, shape.kvHeads, rows, shape.headDim]);
}

export class StaticKvDecoder {
  private length = 0;
  /** The last token returned (the next step's input on the CPU). */
  private lastToken = 0;
  /** Which of the two rings holds the latest tokens. */
  private ring = 0;
  readonly stats: DecoderStats = { runs: 0, runMs: 0, readbacks: 0, readbackMs: 0 };

  private constructor(
    private readonly o: { device: FastDecoderDevice; capacity: number; logits: boolean },
    private readonly shape: DecoderStateShape,
    private readonly session: ort.InferenceSession,
    private readonly readback: ort.InferenceSession | undefined,
    /** Caches, token and rings: device tensors on WebGPU, host tensors on the CPU. */
    private readonly state: Record<string, ort.Tensor>,
    private readonly allocator: ort.InferenceSession | undefined,
  ) {}

  static async open(options: StaticKvDecoderOptions): Promise<StaticKvDecoder> {
    const { modelPath, device, capacity } = options;
    if (device !== "webgpu" && device !== "cpu") throw new Error(`device: expected webgpu or cpu, got ${JSON.stringify(device)}`);
    if (!Number.isInteger(capacity) || capacity < 2) throw new Error(`capacity: expected an integer >= 2, got ${capacity}`);
    const provider = device === "webgpu" ? { name: "webgpu", ...options.webgpuOptions } : "cpu";
    const session = await ort.InferenceSession.create(modelPath, { logSeverityLevel: 3, ...options.sessionOptions, executionProviders: [provider] });
    const shape = stateShape(session);

    let state: Record<string, ort.Tensor>;
    let allocator: ort.InferenceSession | undefined;
    let readback: ort.InferenceSession | undefined;
    if (device === "webgpu") {
      const helper: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, executionProviders: [provider], graphOptimizationLevel: "disabled" };
      allocator = await ort.InferenceSession.create(stateAllocatorModel(shape), { ...helper, preferredOutputLocation: "gpu-buffer" });
      const shapeTensor = (dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(dims, BigInt), [dims.length]);
      state = await allocator.run({
        [ALLOCATOR_INPUTS.kvShape]: shapeTensor([1, shape.kvHeads, capacity, shape.headDim]),
        [ALLOCATOR_INPUTS.tokenShape]: shapeTensor([1, 1]),
        [ALLOCATOR_INPUTS.ringShape]: shapeTensor([shape.ringSize]),
      });
      readback = await ort.InferenceSession.create(readbackModel(shape.ringSize), helper);
    } else {
      state = { [STATE_TOKEN]: int32([0], [1, 1]) };
      for (const ring of STATE_RINGS) state[ring] = int32(new Array(shape.ringSize).fill(0), [shape.ringSize]);
      const rows = Math.min(capacity, INITIAL_CPU_ROWS);
      for (let i = 0; i < shape.nLayers; i++) {
        for (const part of ["key", "value"]) state[`past_key_values.${i}.${part}`] = hostCache(shape, rows);
      }
    }
    return new StaticKvDecoder({ device, capacity, logits: options.logits ?? false }, shape, session, readback, state, allocator);
  }

  /** Tokens in the cache. */
  get cachedTokens(): number {
    return this.length;
  }

  /** Steps `steps()` queues between two readbacks at most. */
  get ringSize(): number {
    return this.shape.ringSize;
  }

  resetStats(): void {
    Object.assign(this.stats, { runs: 0, runMs: 0, readbacks: 0, readbackMs: 0 });
  }

  /**
   * Runs `tokens` after the first `keep` cached tokens (0: a new sequence; the rest of the cache is
   * overwritten) and returns the greedy next token, which becomes the input of the next step.
   */
  async prefill(tokens: readonly number[], keep = 0, options: RunOptions = {}): Promise<DecodeResult> {
    if (tokens.length === 0) throw new Error("prefill: tokens must not be empty");
    if (!Number.isInteger(keep) || keep < 0 || keep > this.length) throw new Error(`prefill: keep must be an integer in [0, ${this.length}], got ${keep}`);
    const total = keep + tokens.length;
    if (total >= this.o.capacity) throw new Error(`prefill: ${total} tokens leave no room in a cache of capacity ${this.o.capacity}`);
    return this.result(await this.run(int32([...tokens], [1, tokens.length]), total, 0, options.logits), options);
  }

  /**
   * Feeds the last greedy token (or `options.token`) and returns the next greedy token (waits for the
   * device), with the logits when asked.
   */
  async step(options: StepOptions = {}): Promise<DecodeResult> {
    this.checkRoom(1);
    if (options.token !== undefined && !(Number.isInteger(options.token) && options.token >= 0)) {
      throw new Error(`step: token must be a non-negative integer, got ${options.token}`);
    }
    const input = options.token === undefined ? this.tokenInput() : int32([options.token], [1, 1]);
    return this.result(await this.run(input, this.length + 1, 0, options.logits), options);
  }

  /**
   * Runs `count` greedy steps and returns their tokens. The steps are queued without waiting for
   * the device; tokens come back in one transfer per `readbackEvery` steps (at most the ring size),
   * and `onTokens` sees each batch as it arrives (e.g. to stream, or to stop early by returning false).
   */
  async steps(count: number, readbackEvery = this.shape.ringSize, onTokens?: (tokens: number[]) => boolean | void): Promise<number[]> {
    if (!Number.isInteger(count) || count < 0) throw new Error(`steps: count must be a non-negative integer, got ${count}`);
    if (!Number.isInteger(readbackEvery) || readbackEvery < 1 || readbackEvery > this.shape.ringSize) {
      throw new Error(`steps: readbackEvery must be an integer in [1, ${this.shape.ringSize}], got ${readbackEvery}`);
    }
    if (this.o.logits) throw new Error("steps: not available with logits: true (use step)");
    this.checkRoom(count);
    const out: number[] = [];
    while (out.length < count) {
      const batch = Math.min(readbackEvery, count - out.length);
      for (let slot = 0; slot < batch; slot++) await this.run(this.tokenInput(), this.length + 1, slot);
      const tokens = await this.readTokens(batch);
      out.push(...tokens);
      if (onTokens?.(tokens) === false) break;
    }
    return out;
  }

  /** A run's result: the device's greedy token, or with per-call logits the host's argmax of them. */
  private async result(logits: Float32Array | undefined, options: RunOptions): Promise<DecodeResult> {
    if (options.logits && !this.o.logits) {
      this.lastToken = argmax(logits!);
      return { token: this.lastToken, logits: logits! };
    }
    const [token] = await this.readTokens(1);
    return logits ? { token, logits } : { token };
  }

  async dispose(): Promise<void> {
    for (const t of Object.values(this.state)) if (t.location === "gpu-buffer") t.dispose();
    for (const s of [this.session, this.readback, this.allocator]) await s?.release();
  }

  private checkRoom(steps: number): void {
    if (this.length === 0) throw new Error("step: call prefill first");
    if (this.length + steps >= this.o.capacity) throw new Error(`step: ${steps} more tokens do not fit in the cache (capacity ${this.o.capacity}, holding ${this.length})`);
  }

  /** The next step's input: the device buffer the last run wrote (WebGPU), or the host's copy (CPU). */
  private tokenInput(): ort.Tensor {
    return this.o.device === "webgpu" ? this.state[STATE_TOKEN] : int32([this.lastToken], [1, 1]);
  }

  /** CPU: grows the host caches (doubling, at most to the capacity) so that they hold `total` tokens. */
  private growHostCaches(total: number, keep: number): void {
    const rows = this.state["past_key_values.0.key"].dims[2];
    if (total <= rows) return;
    let grown = rows;
    while (grown < total) grown *= 2;
    grown = Math.min(grown, this.o.capacity);
    for (let i = 0; i < this.shape.nLayers; i++) {
      for (const part of ["key", "value"]) {
        const name = `past_key_values.${i}.${part}`;
        this.state[name] = grownHostCache(this.shape, this.state[name], grown, keep);
      }
    }
  }

  /** One model run writing its token into ring slot `slot`; the cache then holds `total` tokens. */
  private async run(inputIds: ort.Tensor, total: number, slot: number, wantLogits = false): Promise<Float32Array | undefined> {
    const logits = this.o.logits || wantLogits;
    const device = this.o.device === "webgpu";
    // The rows before this run's input are the ones kept (a prefill after `keep` drops the rest).
    if (!device) this.growHostCaches(total, total - (inputIds.dims[1] ?? 1));
    const from = STATE_RINGS[this.ring];
    const to = STATE_RINGS[1 - this.ring];
    const feeds: Record<string, ort.Tensor> = {
      input_ids: inputIds,
      seqlens_k: int32([total - 1], [1]),
      total_sequence_length: int32([total], []),
      token_ring: this.state[from],
      ring_slot: int32([slot], [1]),
    };
    const fetches: Record<string, ort.Tensor | null> = { next_token: device ? this.state[STATE_TOKEN] : null, token_ring_next: device ? this.state[to] : null };
    for (let i = 0; i < this.shape.nLayers; i++) {
      for (const part of ["key", "value"]) {
        const past = `past_key_values.${i}.${part}`;
        feeds[past] = this.state[past];
        fetches[`present.${i}.${part}`] = device ? this.state[past] : null;
      }
    }
    if (logits) fetches.logits = null;
    const start = performance.now();
    const out = await this.session.run(feeds, fetches);
    this.stats.runMs += performance.now() - start;
    this.stats.runs++;
    if (!device) {
      // Host tensors: onnxruntime returns new outputs; they become the state.
      this.state[to] = out.token_ring_next;
      this.state[STATE_TOKEN] = out.next_token;
      this.lastToken = (out.next_token.data as Int32Array)[0];
      for (let i = 0; i < this.shape.nLayers; i++) {
        this.state[`past_key_values.${i}.key`] = out[`present.${i}.key`];
        this.state[`past_key_values.${i}.value`] = out[`present.${i}.value`];
      }
    }
    this.ring = 1 - this.ring;
    this.length = total;
    return logits ? floatValues(out.logits) : undefined;
  }

  /** The tokens of ring slots 0..count-1 of the latest ring. */
  private async readTokens(count: number): Promise<number[]> {
    const start = performance.now();
    const ring = this.state[STATE_RINGS[this.ring]];
    const data = this.readback ? ((await this.readback.run({ token_ring: ring })).tokens.data as Int32Array) : (ring.data as Int32Array);
    this.stats.readbackMs += performance.now() - start;
    this.stats.readbacks++;
    const tokens = Array.from(data.subarray(0, count));
    this.lastToken = tokens[count - 1];
    return tokens;
  }
}
