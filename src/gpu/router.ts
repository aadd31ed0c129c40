/**
 * HTTP routes of the worker as an itty-router router over Web Request/Response (served in Node by
 * @whatwg-node/server, see server.ts). Every route but /healthz is signed (src/protocol/auth.ts); bodies are
 * read once, size-limited, verified against the signature, then parsed.
 */
import { Router, type IRequest } from "itty-router";
import { ERROR_CODES, errorBody, type Readyz } from "../protocol/index.js";
import { createNodeVerifier } from "./auth.js";
import { HttpError, jsonResponse } from "./http-error.js";
import type { Logger } from "./logger.js";
import type { WorkerService } from "./service.js";

/** Per-request state passed to every handler as the second argument. */
export interface RequestContext {
  /** performance.now() when the request reached the worker (start of queue and deadline accounting). */
  receivedAt: number;
  /** Parsed JSON body of POST routes (after signature verification). */
  body?: unknown;
}

export interface RouterDeps {
  /** null while the model is loading: every route but /healthz and /readyz answers 503 not_ready. */
  service: () => WorkerService | null;
  /** /readyz body while loading. */
  loadingStatus: () => Readyz;
  secrets: readonly string[];
  maxBodyBytes: number;
  logger: Logger;
}

async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  const tooLarge = () => HttpError.of(413, ERROR_CODES.bodyTooLarge, `the body exceeds ${maxBytes} bytes`);
  if (declared > maxBytes) throw tooLarge();
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw HttpError.of(400, ERROR_CODES.invalidJson, "the body is not valid UTF-8");
  }
}

export function createWorkerRouter(deps: RouterDeps) {
  const { maxBodyBytes, logger } = deps;
  const verify = createNodeVerifier(deps.secrets);
  const service = (): WorkerService => {
    const s = deps.service();
    if (!s) throw HttpError.of(503, ERROR_CODES.notReady, "the model is still loading");
    return s;
  };

  const authenticate = async (request: IRequest, ctx: RequestContext): Promise<Response | undefined> => {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/healthz") return undefined;
    const raw = request.method === "GET" || request.method === "HEAD" ? "" : await readBodyText(request as unknown as Request, maxBodyBytes);
    const verdict = verify(request as unknown as Request, raw);
    if (!verdict.ok) {
      logger.warn("unauthorized", { method: request.method, path: url.pathname, reason: verdict.reason });
      return jsonResponse(401, errorBody(ERROR_CODES.unauthorized, `unauthorized: ${verdict.reason}`));
    }
    // An empty body stays undefined (cancel takes none); routes that need one reject it when validating.
    if (request.method === "POST" && raw !== "") {
      try {
        ctx.body = JSON.parse(raw);
      } catch (error) {
        throw HttpError.of(400, ERROR_CODES.invalidJson, `the body is not JSON: ${(error as Error).message}`);
      }
    }
    return undefined;
  };

  const router = Router<IRequest, [RequestContext]>({
    before: [authenticate],
    catch: (error) => {
      if (error instanceof HttpError) return jsonResponse(error.status, error.body, error.headers);
      logger.error("handler_failed", { error });
      return jsonResponse(500, errorBody(ERROR_CODES.internal, "internal error"));
    },
  });

  router
    .get("/healthz", () => jsonResponse(200, { ok: true }))
    .get("/readyz", () => {
      const status = deps.service()?.readyz() ?? deps.loadingStatus();
      return jsonResponse(status.ready ? 200 : 503, status);
    })
    .get("/metrics", () =>
      new Response(service().metrics.registry.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      }),
    )
    .post("/v1/tokenize", (_req, ctx) => jsonResponse(200, service().tokenize(ctx.body)))
    .post("/v1/generate", (request, ctx) => {
      const stream = service().generate(ctx.body, (request as unknown as Request).signal, ctx.receivedAt);
      return new Response(stream, {
        status: 200,
        headers: { "content-type": "application/x-ndjson; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" },
      });
    })
    .post("/v1/requests/:request_id/cancel", (request) => {
      const id = decodeURIComponent(request.params.request_id!);
      if (!service().cancel(id)) {
        throw HttpError.of(404, ERROR_CODES.notFound, `no queued or running request with request_id ${id}`, "request_id");
      }
      return jsonResponse(200, { cancelled: true, request_id: id });
    })
    .all("*", (request) => jsonResponse(404, errorBody(ERROR_CODES.notFound, `no route for ${request.method} ${new URL(request.url).pathname}`)));

  return {
    fetch: (request: Request): Promise<Response> => router.fetch(request as unknown as IRequest, { receivedAt: performance.now() }),
  };
}
