/**
 * Generations on the static-KV decoder (src/gpu/fast-decoder): one decoder per worker process, whose
 * fixed-capacity cache holds the last sequence it ran, so a step costs the same at any context length.
 *
 * Two ways to run:
 * - Plain greedy requests (temperature 0, no penalties, no logprobs): the graph picks the token on the device,
 *   and steps are queued and read back `readbackEvery` at a time, so the host neither downloads logits nor
 *   waits for the device per token (docs/performance.md: 1.75–5.8× faster decode on the H200 than
 *   transformers.js).
 * - Everything else (sampling, penalties, logprobs): each run downloads its logits and the host chooses the
 *   token with the same TokenSampler as the transformers.js path, then feeds it to the next step. It waits for
 *   the device every token, as transformers.js does, but keeps the flat step cost of the static cache (the
 *   Llama 3.1 chat defaults, temperature 0.6 and top-p 0.9, are sampled requests).
 *
 * It serves a prompt + max_new_tokens that fits its capacity, one generation at a time (another one running
 * beside it takes the transformers.js path).
 */
import type { InferenceSession } from "onnxruntime-node";
import { StaticKvDecoder, type FastDecoderDevice } from "./fast-decoder/index.js";
import { commonPrefixLength, yieldToEventLoop, type GenerationJob, type GenerationStream } from "./generation-stream.js";
import { isPlainGreedy, TokenSampler } from "./token-sampler.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";

export interface FastEngineOptions {
  /** The folder's `onnx/model<suffix>.static-kv.onnx` (staticKvFileName). */
  modelPath: string;
  device: FastDecoderDevice;
  /** Cache capacity in tokens (prompt + generated); allocated at open on WebGPU, grown to as needed on the CPU. */
  capacity: number;
  /** Steps queued between two readbacks: the streaming granularity and the cancellation latency. */
  readbackEvery: number;
  /** PREFIX_REUSE: false computes every prompt whole, whatever the cache holds. */
  prefixReuse: boolean;
  /** onnxruntime session options (the worker's CPU settings: cpuSessionOptions). */
  sessionOptions?: InferenceSession.SessionOptions;
}

/** What /readyz shows about the fast decoder. */
export interface FastEngineStatus {
  capacity: number;
  readback_every: number;
  busy: boolean;
  /** Tokens of the sequence its cache holds, reusable by a prompt that starts with them. */
  cached_tokens: number;
}

export class FastEngine {
  private busy = false;
  /** The tokens whose keys/values the decoder's cache holds at positions 0..n-1 (only accepted ones). */
  private sequence: number[] = [];

  private constructor(
    private readonly decoder: StaticKvDecoder,
    readonly options: FastEngineOptions,
  ) {}

  static async open(options: FastEngineOptions, warmToken: number): Promise<FastEngine> {
    const decoder = await StaticKvDecoder.open({
      modelPath: options.modelPath,
      device: options.device,
      capacity: options.capacity,
      sessionOptions: options.sessionOptions,
    });
    if (options.readbackEvery > decoder.ringSize) {
      await decoder.dispose();
      throw new Error(`FAST_DECODER_READBACK=${options.readbackEvery} exceeds the graph's token ring (${decoder.ringSize} steps)`);
    }
    // One prefill and one queued step so session initialisation and shader compilation are not paid by the
    // first request; the cache then holds nothing we count on.
    await decoder.prefill([warmToken]);
    await decoder.steps(1, 1);
    return new FastEngine(decoder, options);
  }

  status(): FastEngineStatus {
    return {
      capacity: this.options.capacity,
      readback_every: this.options.readbackEvery,
      busy: this.busy,
      cached_tokens: this.sequence.length,
    };
  }

  /** Whether this job can run here now (see the header). */
  canServe(job: GenerationJob): boolean {
    // prefill needs prompt < capacity; maxNewTokens - 1 steps after it need prompt + maxNewTokens <= capacity.
    return !this.busy && job.promptIds.length + job.maxNewTokens <= this.options.capacity;
  }

  /**
   * Runs the job on the decoder, feeding `stream`. Reuses the cached sequence's longest common prefix with the
   * prompt (always leaving one prompt token to compute). Throws on model errors (the caller ends the stream).
   */
  async run(job: GenerationJob, stream: GenerationStream, metrics: WorkerMetrics, logger: Logger): Promise<void> {
    if (this.busy) throw new Error("the fast decoder is already running a generation");
    this.busy = true;
    const prompt = job.promptIds;
    const previous = this.sequence;
    // Until the run ends well, the cache holds nothing we know of.
    this.sequence = [];
    const produced: number[] = [];
    let prefilled = false;
    let failed = false;
    try {
      const keep = this.options.prefixReuse ? Math.min(commonPrefixLength(previous, prompt), prompt.length - 1) : 0;
      // Lookups are counted as on the transformers.js path: for session requests, and not when reuse is off.
      if (job.request.session_id !== null && this.options.prefixReuse) {
        metrics.kvLookups.inc({ result: keep === 0 ? "miss" : keep === previous.length ? "hit" : "partial" });
      }
      stream.start(keep);
      if (stream.cancelled()) return;

      const greedy = isPlainGreedy(job.request.sampling);
      const prefillStart = performance.now();
      const first = await this.decoder.prefill(prompt.slice(keep), keep, { logits: !greedy });
      prefilled = true;
      metrics.prefill.observe((performance.now() - prefillStart) / 1000);
      metrics.modelTokens.inc({ phase: "prefill" }, prompt.length - keep);
      if (!greedy) {
        await this.sampled(job, stream, metrics, first.logits!, produced);
        return;
      }
      produced.push(first.token);
      if (!stream.accept(first.token)) return;

      const { readbackEvery } = this.options;
      for (;;) {
        // Between readbacks the event loop runs, so a cancel or disconnect stops within one readback.
        await yieldToEventLoop();
        if (stream.cancelled()) return;
        const count = Math.min(readbackEvery, job.maxNewTokens - stream.generated.length);
        const batchStart = performance.now();
        let going = true;
        await this.decoder.steps(count, count, (tokens) => {
          produced.push(...tokens);
          for (const token of tokens) if (!(going = stream.accept(token))) break;
          return going;
        });
        const perStep = (performance.now() - batchStart) / 1000 / count;
        for (let i = 0; i < count; i++) metrics.decodeStep.observe(perStep);
        metrics.modelTokens.inc({ phase: "decode" }, count);
        if (!going) return;
      }
    } catch (error) {
      // A failed run may have left any part of the cache half-written: nothing in it is reused.
      failed = true;
      throw error;
    } finally {
      this.busy = false;
      if (!prefilled && !failed) {
        this.sequence = previous; // cancelled before the model ran: the cache is as it was
      } else if (!failed) {
        // The cache holds the prompt and the produced tokens it was fed (the last one read back never is);
        // tokens computed after a stop token in the same readback are not accepted and not counted.
        const fed = this.decoder.cachedTokens - prompt.length;
        this.sequence = [...prompt, ...produced.slice(0, Math.min(fed, stream.acceptedTokens))];
      }
      logger.debug("fast_decoder_run", { request_id: job.request.request_id, cached_sequence: this.sequence.length });
    }
  }

  /**
   * The host-chosen path after the prefill: choose from the logits, feed the choice, until the stream ends.
   * `produced` receives every token chosen (the caller records what the cache was fed).
   */
  private async sampled(job: GenerationJob, stream: GenerationStream, metrics: WorkerMetrics, prefillLogits: Float32Array, produced: number[]): Promise<void> {
    const sampler = new TokenSampler(job.request.sampling, job.seed, job.promptIds);
    let logits = prefillLogits;
    for (;;) {
      const stepStart = performance.now();
      const { token, logprobs } = sampler.choose(logits, stream.generated);
      produced.push(token);
      if (!stream.accept(token, logprobs)) return;
      // One token per run: the event loop runs between steps, so a cancel or disconnect stops within one step.
      await yieldToEventLoop();
      if (stream.cancelled()) return;
      logits = (await this.decoder.step({ token, logits: true })).logits!;
      metrics.modelTokens.inc({ phase: "decode" });
      metrics.decodeStep.observe((performance.now() - stepStart) / 1000);
    }
  }

  async dispose(): Promise<void> {
    await this.decoder.dispose();
  }
}
