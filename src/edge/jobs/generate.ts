/**
 * One generation attempt of a job: the stored request replayed to the same handler that serves the
 * synchronous endpoint (`/v1/chat/completions` or `/v1/completions`), so a job's result is exactly what
 * that endpoint would have answered: same validation, prompt format, GPU routing and failover, response
 * object. The handler's status then says what kind of failure it was.
 */
import type { Principal } from "../auth.js";
import { ApiError } from "../errors.js";
import { chatCompletions } from "../openai/chat-completions.js";
import { completions } from "../openai/completions.js";
import type { EdgeHandler, EdgeServices } from "../services.js";
import type { JobError, JobSpec } from "./job.js";

export type AttemptResult =
  | { ok: true; result: Record<string, unknown> }
  /**
   * `permanent`: the request itself is wrong (a 4xx), retrying cannot help. `poolUnavailable`: no GPU worker
   * could take it at all (503), so an immediate retry would fail the same way.
   */
  | { ok: false; error: JobError; permanent: boolean; poolUnavailable: boolean };

const HANDLERS: Record<JobSpec["kind"], { path: string; handler: EdgeHandler }> = {
  "chat.completion": { path: "/v1/chat/completions", handler: chatCompletions },
  text_completion: { path: "/v1/completions", handler: completions },
};

function failure(status: number, error: JobError): AttemptResult {
  const permanent = status >= 400 && status < 500 && status !== 408 && status !== 429;
  return { ok: false, error, permanent, poolUnavailable: status === 503 };
}

/** Runs the job's request once; `gpuRequestId` becomes the request id on the GPU worker (for cancelling). */
export async function generateOnce(spec: JobSpec, gpuRequestId: string, services: EdgeServices): Promise<AttemptResult> {
  const { path, handler } = HANDLERS[spec.kind];
  const principal: Principal = { keyHash: spec.owner, keyId: spec.owner.slice(0, 12), name: null };
  const request = new Request(`https://jobs.internal${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: spec.body,
  });
  try {
    const response = await handler(request, { services, principal, requestId: gpuRequestId });
    const json = (await response.json().catch(() => null)) as Record<string, unknown> | null;
    if (response.ok && json !== null) return { ok: true, result: json };
    const error = (json?.error ?? null) as { message?: unknown; code?: unknown } | null;
    return failure(response.status, {
      message: typeof error?.message === "string" ? error.message : `the generation answered HTTP ${response.status}`,
      code: typeof error?.code === "string" ? error.code : "generation_failed",
    });
  } catch (e) {
    if (e instanceof ApiError) return failure(e.status, { message: e.message, code: e.code ?? "generation_failed" });
    return { ok: false, error: { message: e instanceof Error ? e.message : String(e), code: "internal_error" }, permanent: false, poolUnavailable: false };
  }
}
