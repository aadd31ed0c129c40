/**
 * A small client for the worker's HTTP API (signs every request, validates replies), usable from the edge
 * (workerd) and from Node scripts alike: only `fetch` and WebCrypto.
 */
import { signWorkerRequest } from "./auth.js";
import { parseNdjsonStream } from "./ndjson.js";
import {
  errorBodySchema,
  readyzSchema,
  tokenizeResponseSchema,
  type ErrorBody,
  type GenerateRequestInput,
  type Readyz,
  type TokenizeResponse,
  type WorkerEvent,
} from "./schemas.js";

export interface WorkerClientOptions {
  /** e.g. `http://10.0.0.5:8788` (no trailing slash needed). */
  baseUrl: string;
  secret: string;
  fetch?: typeof fetch;
}

/** A non-2xx reply before any streaming: status, the protocol error body, and Retry-After (s) on 429. */
export class WorkerHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody | null,
    readonly retryAfterSeconds: number | null,
  ) {
    super(body ? `worker answered ${status}: ${body.error.message}` : `worker answered ${status}`);
    this.name = "WorkerHttpError";
  }
}

export function createWorkerClient(options: WorkerClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? fetch;

  async function request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const raw = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = await signWorkerRequest(options.secret, { method, path, body: raw });
    if (raw !== "") headers["content-type"] = "application/json";
    return doFetch(`${base}${path}`, { method, headers, body: method === "GET" ? undefined : raw, signal });
  }

  async function ensureOk(res: Response): Promise<Response> {
    if (res.ok) return res;
    let body: ErrorBody | null = null;
    try {
      const parsed = errorBodySchema.safeParse(await res.json());
      if (parsed.success) body = parsed.data;
    } catch {
      // not JSON
    }
    const retry = Number(res.headers.get("retry-after"));
    throw new WorkerHttpError(res.status, body, Number.isFinite(retry) && retry > 0 ? retry : null);
  }

  return {
    request,
    /** Starts a generation; resolves once the worker accepted it (HTTP 200) with its event stream. */
    async generate(req: GenerateRequestInput, signal?: AbortSignal): Promise<AsyncGenerator<WorkerEvent>> {
      const res = await ensureOk(await request("POST", "/v1/generate", req, signal));
      if (!res.body) throw new WorkerHttpError(res.status, null, null);
      return parseNdjsonStream(res.body);
    },
    async cancel(requestId: string): Promise<boolean> {
      const res = await request("POST", `/v1/requests/${encodeURIComponent(requestId)}/cancel`);
      if (res.status === 404) return false;
      await ensureOk(res);
      return true;
    },
    async tokenize(text: string, bos = false): Promise<TokenizeResponse> {
      const res = await ensureOk(await request("POST", "/v1/tokenize", { text, bos }));
      return tokenizeResponseSchema.parse(await res.json());
    },
    /** /readyz answers 503 with the same body when not ready; both are returned, not thrown. */
    async readyz(): Promise<Readyz> {
      const res = await request("GET", "/readyz");
      if (res.status !== 200 && res.status !== 503) await ensureOk(res);
      return readyzSchema.parse(await res.json());
    },
  };
}

export type WorkerClient = ReturnType<typeof createWorkerClient>;
