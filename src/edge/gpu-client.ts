/**
 * One HTTP exchange with one GPU worker: a signed `POST /v1/generate` whose NDJSON body is read as protocol
 * events, and the signed cancel call. Failover, timeouts and session placement are decided by the caller
 * (generation.ts); this module only reports what happened, with a flag saying whether trying another worker
 * makes sense.
 */
import {
  errorBodySchema,
  parseNdjsonStream,
  signWorkerRequest,
  type GenerateRequestInput,
  type WorkerEvent,
} from "../protocol/index.js";
import { describeFetchError } from "./pool.js";

/** The worker did not accept the request. `retryable`: another worker may succeed. */
export class GpuRequestError extends Error {
  override name = "GpuRequestError";
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status: number | null = null,
    readonly code: string | null = null,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

export interface OpenedGeneration {
  events: AsyncGenerator<WorkerEvent>;
}

/** Statuses after which another worker may well succeed (overload, restarts, auth misconfiguration of one). */
function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 401 || status === 408 || status === 404;
}

export async function openGeneration(
  workerUrl: string,
  secret: string,
  request: GenerateRequestInput,
  signal: AbortSignal,
): Promise<OpenedGeneration> {
  const body = JSON.stringify(request);
  const path = "/v1/generate";
  const auth = secret ? await signWorkerRequest(secret, { method: "POST", path, body }) : {};
  let response: Response;
  try {
    response = await fetch(`${workerUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/x-ndjson", ...auth },
      body,
      signal,
    });
  } catch (e) {
    throw new GpuRequestError(`GPU worker unreachable: ${describeFetchError(e)}`, true);
  }
  if (!response.ok || response.body === null) {
    const json: unknown = await response.json().catch(() => null);
    const parsed = errorBodySchema.safeParse(json);
    const message = parsed.success ? parsed.data.error.message : `HTTP ${response.status}`;
    throw new GpuRequestError(
      `GPU worker rejected the request: ${message}`,
      retryableStatus(response.status),
      response.status,
      parsed.success ? parsed.data.error.code : null,
      parsed.success ? (parsed.data.error.field ?? null) : null,
    );
  }
  return { events: parseNdjsonStream(response.body) };
}

/** Asks the worker to stop a request (best effort: failures only mean the worker is gone already). */
export async function cancelGeneration(workerUrl: string, secret: string, requestId: string): Promise<void> {
  const path = `/v1/requests/${encodeURIComponent(requestId)}/cancel`;
  const auth = secret ? await signWorkerRequest(secret, { method: "POST", path, body: "" }) : {};
  try {
    const response = await fetch(`${workerUrl}${path}`, { method: "POST", headers: auth, signal: AbortSignal.timeout(5_000) });
    await response.body?.cancel();
  } catch {
    // The worker is unreachable; its own disconnect handling stops the request.
  }
}
