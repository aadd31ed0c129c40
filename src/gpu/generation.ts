/**
 * One generation: on the static-KV fast decoder when it is free and the request fits it (fast-generation.ts),
 * otherwise on transformers.js — session-cache reuse, prefill of the uncached suffix, then one decode step
 * per token with our sampling, until a stop token, the length limit or cancellation. Both engines feed the
 * same GenerationStream, which emits the protocol events.
 */
import type { DoneEvent } from "../protocol/index.js";
import type { DecodeBatcher } from "./batcher.js";
import type { FastEngine } from "./fast-generation.js";
import { GenerationStream, commonPrefixLength, yieldToEventLoop, type GenerationJob } from "./generation-stream.js";
import type { KvLru } from "./kv-lru.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import type { KvState, ModelRunner } from "./runner.js";
import { TokenSampler } from "./token-sampler.js";

export type { GenerationJob, StopReason } from "./generation-stream.js";

/** Which engine ran a generation (the `engine` label of le_worker_generations_total). */
export type Engine = "static_kv" | "transformers";

export interface GenerationDeps {
  runner: ModelRunner;
  /** Decode steps go through it, so generations running side by side can share a forward pass. */
  batcher: DecodeBatcher;
  sessions: KvLru<KvState>;
  /** PREFIX_REUSE: false keeps no session caches and reuses none (every prompt computed whole). */
  prefixReuse: boolean;
  /** The static-KV decoder, when FAST_DECODER is on and the folder has its graph. */
  fast: FastEngine | null;
  metrics: WorkerMetrics;
  logger: Logger;
}


/**
 * Takes the session's cache (if any) and makes it hold exactly the longest prefix of the prompt it can serve,
 * always leaving at least one prompt token to feed (its logits start generation). A cache that would need
 * cropping but cannot be cropped (GPU tensors) is dropped and the prompt computed afresh.
 */
async function acquireState(deps: GenerationDeps, sessionId: string | null, prompt: readonly number[]): Promise<KvState> {
  const cached = sessionId === null ? undefined : deps.sessions.take(sessionId);
  if (!cached) {
    if (sessionId !== null) deps.metrics.kvLookups.inc({ result: "miss" });
    return deps.runner.newState();
  }
  let reusable = Math.min(commonPrefixLength(cached.tokens, prompt), prompt.length - 1);
  if (reusable < cached.tokens.length && !deps.runner.canCrop(cached)) reusable = 0;
  if (reusable === 0) {
    cached.dispose();
    deps.metrics.kvLookups.inc({ result: "miss" });
    return deps.runner.newState();
  }
  if (reusable < cached.tokens.length) {
    await deps.runner.crop(cached, reusable);
    deps.metrics.kvLookups.inc({ result: "partial" });
  } else {
    deps.metrics.kvLookups.inc({ result: "hit" });
  }
  return cached;
}

/**
 * Runs the job to completion and returns its `done` event (also emitted) and the engine that ran it. Never
 * throws for model errors: they end the stream with finish_reason "error".
 */
export async function runGeneration(deps: GenerationDeps, job: GenerationJob): Promise<{ done: DoneEvent; engine: Engine }> {
  const stream = new GenerationStream(job, deps.metrics);
  const engine: Engine = deps.fast?.canServe(job) ? "static_kv" : "transformers";
  deps.metrics.generations.inc({ engine });
  try {
    if (engine === "static_kv") await deps.fast!.run(job, stream, deps.metrics, deps.logger);
    else await runOnTransformers(deps, job, stream);
  } catch (e) {
    stream.fail(e);
    deps.logger.error("generation_failed", { request_id: job.request.request_id, engine, error: e });
  }
  return { done: stream.end(), engine };
}

/** The transformers.js path: any sampling, logprobs, penalties, session caches in the LRU, batched CPU steps. */
async function runOnTransformers(deps: GenerationDeps, job: GenerationJob, stream: GenerationStream): Promise<void> {
  const { runner, metrics } = deps;
  const { request, promptIds } = job;
  const sampler = new TokenSampler(request.sampling, job.seed, promptIds);
  const sessionId = deps.prefixReuse ? request.session_id : null;
  let state: KvState | null = null;

  try {
    state = await acquireState(deps, sessionId, promptIds);
    const cachedTokens = state.tokens.length;
    stream.start(cachedTokens);

    const prefillStart = performance.now();
    let logits = await runner.forward(state, promptIds.slice(cachedTokens));
    metrics.prefill.observe((performance.now() - prefillStart) / 1000);
    metrics.modelTokens.inc({ phase: "prefill" }, promptIds.length - cachedTokens);

    deps.batcher.join();
    try {
      while (!stream.cancelled()) {
        const stepStart = performance.now();
        const { token, logprobs } = sampler.choose(logits, stream.generated);
        if (!stream.accept(token, logprobs)) break;
        await yieldToEventLoop();
        if (job.signal.aborted) continue; // reported at the top of the loop
        logits = await deps.batcher.decode(state, token);
        metrics.modelTokens.inc({ phase: "decode" });
        metrics.decodeStep.observe((performance.now() - stepStart) / 1000);
      }
    } finally {
      deps.batcher.leave();
    }
  } catch (e) {
    // A failed pass may leave the state half-updated: never keep it.
    state?.dispose();
    throw e;
  }

  if (sessionId !== null) deps.sessions.put(sessionId, state);
  else state.dispose();
}
