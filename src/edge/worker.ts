/// <reference types="@cloudflare/workers-types" />
/**
 * The Cloudflare Worker entry (wrangler.toml `main`): the gateway over the three use-case handlers of
 * `functions/`, plus the Durable Object class it needs. Nothing is computed at module scope.
 */
import { handleChatFunction } from "../../functions/chat.js";
import { handleHttpEndpoint } from "../../functions/http-endpoint.js";
import { handleWebhookGenerate } from "../../functions/webhook-generate.js";
import { ApiError, errorResponse } from "./errors.js";
import { createGateway } from "./gateway.js";
import { handleJobQueue } from "./jobs/worker-queue.js";
import { workerServices, type Env } from "./worker-services.js";

export { SessionRouter } from "./session-router.js";
export { GenerationJob } from "./jobs/job-object.js";
export { WebhookEndpoint } from "./jobs/endpoint-object.js";
export type { Env } from "./worker-services.js";

const gateway = createGateway({ http: handleHttpEndpoint, chat: handleChatFunction, webhook: handleWebhookGenerate });

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    let services;
    try {
      services = workerServices(env, ctx);
    } catch (error) {
      // A bad variable (ConfigError names it) is the operator's to fix: say so in the log, not to the caller.
      console.error(JSON.stringify({ event: "config_error", error: error instanceof Error ? error.message : String(error) }));
      return errorResponse(new ApiError(500, "the gateway is misconfigured; its log says how", "server_error", "config_error"));
    }
    return gateway(request, services);
  },
  /** Webhook-driven generation: the job queue and its dead-letter queue (src/edge/jobs). */
  queue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
    return handleJobQueue(batch, env, ctx);
  },
} satisfies ExportedHandler<Env>;
