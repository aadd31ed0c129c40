/**
 * The gateway in front of the use-case handlers of `functions/`: request ids, CORS (off unless origins are
 * configured), API-key authentication and per-key rate limits, error bodies, and one log line per request.
 * Built on itty-router's AutoRouter; runtime-neutral (Web Request/Response only).
 */
import { AutoRouter, cors, type IRequest } from "itty-router";
import { authenticate, enforceRateLimit, type Principal } from "./auth.js";
import type { EdgeConfig } from "./config.js";
import { ApiError, errorResponse } from "./errors.js";
import { isUsable } from "./pool.js";
import { newRequestId, type EdgeHandler, type EdgeServices } from "./services.js";
import { workersAiErrorResponse } from "./workers-ai/format.js";

export interface GatewayRoutes {
  /**
   * OpenAI-compatible and Workers-AI-compatible API (`/v1/*`, `/ai/*`). This handler and `chat` run while
   * the rate limit is being checked: they must await `context.admission` before starting GPU work (startRun
   * does).
   */
  http: EdgeHandler;
  /** The per-request chat function (`POST /chat`). */
  chat: EdgeHandler;
  /** Webhook-driven generation (`/v1/jobs*`; `/v1/hooks/*` authenticates by signature, not API key). */
  webhook: EdgeHandler;
}

/** `meta` collects what the log line reports about the caller (the key id, never the key). */
type Args = [services: EdgeServices, requestId: string, meta: { keyId?: string }];

const ALLOWED_HEADERS = ["authorization", "content-type", "x-api-key", "x-session-id", "idempotency-key"];

const corsByConfig = new WeakMap<EdgeConfig, ReturnType<typeof cors> | null>();

function corsFor(config: EdgeConfig): ReturnType<typeof cors> | null {
  let c = corsByConfig.get(config);
  if (c === undefined) {
    c =
      config.corsOrigins.length === 0
        ? null
        : cors({
            origin: config.corsOrigins.includes("*") ? "*" : [...config.corsOrigins],
            allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
            allowHeaders: ALLOWED_HEADERS,
            exposeHeaders: ["x-request-id", "retry-after"],
            maxAge: 600,
          });
    corsByConfig.set(config, c);
  }
  return c;
}

/** A failure that is not an API error is a bug or an outage: its details go to the log, never to the caller. */
function reportUnexpected(error: unknown, services: EdgeServices, requestId: string): void {
  if (error instanceof ApiError) return;
  services.log({
    event: "unexpected_error",
    request_id: requestId,
    error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    stack: error instanceof Error ? error.stack : undefined,
  });
}

/** Errors in the shape the caller's API expects. */
function errorFor(path: string, error: unknown): Response {
  return path.startsWith("/ai/") ? workersAiErrorResponse(error) : errorResponse(error);
}

export function createGateway(routes: GatewayRoutes): (request: Request, services: EdgeServices) => Promise<Response> {
  /**
   * Authenticates, then runs the handler once the rate limit admits the caller. With `limitAlongside`, the
   * rate-limit check (an I/O round trip to the limiter) runs while the handler reads, validates and
   * tokenizes the request, and the handler awaits `context.admission` before any GPU work (startRun does).
   * A limited caller still gets the 429 and nothing else: whatever the handler answered or threw is replaced.
   */
  const authenticated =
    (handler: EdgeHandler, limitAlongside = false) =>
    async (request: IRequest, services: EdgeServices, requestId: string, meta: { keyId?: string }): Promise<Response> => {
      const principal: Principal = await authenticate(request, services.config, services.keys);
      meta.keyId = principal.keyId;
      if (!limitAlongside) {
        await enforceRateLimit(principal, services.limiter);
        return handler(request, { services, principal, requestId });
      }
      const admission = enforceRateLimit(principal, services.limiter);
      admission.catch(() => undefined); // awaited below on every path; this only keeps it from counting as unhandled
      let response: Response;
      try {
        response = await handler(request, { services, principal, requestId, admission });
      } catch (error) {
        await admission;
        throw error;
      }
      try {
        await admission;
      } catch (error) {
        await response.body?.cancel().catch(() => undefined);
        throw error;
      }
      return response;
    };
  const anonymous =
    (handler: EdgeHandler) =>
    (request: IRequest, services: EdgeServices, requestId: string): Promise<Response> =>
      handler(request, { services, principal: { keyHash: "anonymous", keyId: "anonymous", name: null }, requestId });

  const router = AutoRouter<IRequest, Args>({
    missing: (request) => {
      throw new ApiError(404, `no route for ${request.method} ${new URL(request.url).pathname}`, "not_found_error", "not_found");
    },
    catch: (error, request, services, requestId) => {
      reportUnexpected(error, services, requestId);
      return errorFor(new URL(request.url).pathname, error);
    },
  });

  router
    .get("/healthz", () => Response.json({ ok: true }))
    .get("/readyz", async (_request, services) => {
      const states = await services.pool.snapshot((task) => services.waitUntil(task()));
      const workers = states.map((s, index) => ({
        index,
        ready: isUsable(s),
        load: s.readyz?.load ?? null,
        max_context: s.readyz?.max_context ?? null,
        error: s.lastError,
      }));
      const ready = workers.some((w) => w.ready);
      return Response.json({ ready, workers }, { status: ready ? 200 : 503 });
    })
    .all("/v1/hooks/*", anonymous(routes.webhook))
    .all("/v1/jobs", authenticated(routes.webhook))
    .all("/v1/jobs/*", authenticated(routes.webhook))
    // The job routes store work before answering, so their limit is checked first.
    .all("/chat", authenticated(routes.chat, true))
    .all("/v1/*", authenticated(routes.http, true))
    .all("/ai/*", authenticated(routes.http, true));

  return async (request: Request, services: EdgeServices): Promise<Response> => {
    const requestId = newRequestId();
    const started = Date.now();
    const path = new URL(request.url).pathname;
    const corsHandlers = corsFor(services.config);
    const meta: { keyId?: string } = {};
    let response: Response;
    try {
      const preflight = corsHandlers?.preflight(request as IRequest);
      response = preflight instanceof Response ? preflight : await router.fetch(request, services, requestId, meta);
    } catch (error) {
      reportUnexpected(error, services, requestId);
      response = errorFor(path, error);
    }
    response = new Response(response.body, response); // make the headers mutable
    response.headers.set("x-request-id", requestId);
    if (corsHandlers) response = corsHandlers.corsify(response, request);
    const line = {
      event: "request",
      request_id: requestId,
      key_id: meta.keyId ?? null,
      method: request.method,
      path,
      status: response.status,
      ms: Date.now() - started,
    };
    // Written after the response has gone out: printing a log line is I/O (about 5 ms under wrangler dev, where
    // it crosses the inspector protocol) and must not sit on the request's critical path.
    if (services.config.logRequests || response.status >= 500) {
      services.waitUntil(new Promise<void>((resolve) => setTimeout(() => resolve(services.log(line)), 0)));
    }
    return response;
  };
}
