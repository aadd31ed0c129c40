/**
 * The job operations behind the HTTP routes, independent of routing: submit (validate, store, enqueue),
 * read, cancel (including the GPU request), and start a job from a verified inbound hook. Failures are
 * ApiErrors carrying the status and the field at fault.
 */
import { cancelGeneration } from "../gpu-client.js";
import { readBodyText } from "../body.js";
import { ApiError, badRequest } from "../errors.js";
import type { EdgeServices } from "../services.js";
import { sha256Hex } from "../auth.js";
import { signingKeyFor } from "./config.js";
import { verifyInbound } from "./inbound.js";
import type { JobSpec, JobView } from "./job.js";
import { canonicalJson, JOB_ID, jobIdFor, parseJobRequest, type JobRequest } from "./request.js";
import type { JobRuntime } from "./runtime.js";
import { renderPrompt, TemplateError } from "./template.js";
import { checkCallbackUrl } from "./url-policy.js";

export interface Submitted {
  /** false: the Idempotency-Key named a job that already existed (same request). */
  created: boolean;
  view: JobView;
}

const notFound = (id: string) => new ApiError(404, `no job ${id}`, "not_found_error", "job_not_found", "id");

/** Checks the callback before anything is stored: URL policy, signing key, endpoint standing. */
async function checkWebhook(runtime: JobRuntime, request: JobRequest, ownerKeyHash: string | null): Promise<string> {
  const verdict = checkCallbackUrl(request.webhook.url, { devMode: runtime.config.devMode });
  if (!verdict.ok) throw badRequest(`webhook.url ${verdict.reason}`, "webhook.url", "invalid_webhook_url");
  if (signingKeyFor(runtime.config, request.webhook.secretId, ownerKeyHash) === null) {
    throw badRequest(`webhook.secret_id: no signing key "${request.webhook.secretId}" is configured for this API key`, "webhook.secret_id", "unknown_secret_id");
  }
  const disabled = await runtime.endpoint(verdict.url.href).disabled();
  if (disabled !== null) {
    throw badRequest(
      `webhook.url is disabled until ${new Date(disabled.until).toISOString()} because it answered 410 Gone`,
      "webhook.url",
      "webhook_endpoint_disabled",
    );
  }
  return verdict.url.href;
}

/** Stores the job and queues it; a job that cannot be queued is dropped again, so the submit can be retried. */
async function store(runtime: JobRuntime, spec: JobSpec): Promise<Submitted> {
  const job = runtime.job(spec.id);
  const created = await job.create(spec);
  if (created.kind === "conflict") {
    throw new ApiError(409, "this Idempotency-Key was already used with a different request", "invalid_request_error", "idempotency_key_reused", "idempotency-key");
  }
  if (created.kind === "existing") return { created: false, view: created.view };
  try {
    await runtime.enqueue({ job: spec.id });
  } catch (error) {
    await job.discard();
    throw new ApiError(503, `the job could not be queued (${String(error)}); retry the request`, "service_unavailable_error", "queue_unavailable", null, { "retry-after": "5" });
  }
  return { created: true, view: created.view };
}

export async function submitJob(runtime: JobRuntime, services: EdgeServices, owner: string, json: unknown, idempotencyKey: string | null): Promise<Submitted> {
  const request = parseJobRequest(json, services.config);
  const url = await checkWebhook(runtime, request, owner);
  const spec: JobSpec = {
    id: await jobIdFor(owner, idempotencyKey),
    owner,
    kind: request.kind,
    body: request.body,
    requestHash: await sha256Hex(canonicalJson(json)),
    webhook: { url, secretId: request.webhook.secretId },
    metadata: request.metadata,
    source: "api",
    operatorSigned: false,
  };
  return store(runtime, spec);
}

export async function readJob(runtime: JobRuntime, owner: string, id: string): Promise<JobView> {
  if (!JOB_ID.test(id)) throw notFound(id);
  const view = await runtime.job(id).read(owner);
  if (view === null) throw notFound(id);
  return view;
}

/** Cancels a queued or running job and stops its GPU request on whichever worker has it. */
export async function cancelJob(runtime: JobRuntime, services: EdgeServices, owner: string, id: string): Promise<JobView> {
  if (!JOB_ID.test(id)) throw notFound(id);
  const result = await runtime.job(id).cancel(owner);
  if (result.kind === "not_found") throw notFound(id);
  if (result.kind === "already_finished") {
    throw new ApiError(409, `job ${id} has already ${result.view.status === "cancelled" ? "been cancelled" : result.view.status}`, "invalid_request_error", "job_finished", "id");
  }
  if (result.gpuRequestId !== null) {
    // Which worker runs it is known only to the consumer run; request ids are unique, so asking every
    // worker is safe, and the others answer "unknown request".
    const { gpuWorkers, workerSecret } = services.config;
    await Promise.all(gpuWorkers.map((worker) => cancelGeneration(worker, workerSecret, result.gpuRequestId!)));
  }
  return result.view;
}

/** `POST /v1/hooks/:name`: verify, render the hook's prompt with the payload, start the job. */
export async function triggerHook(runtime: JobRuntime, services: EdgeServices, name: string, request: Request): Promise<Submitted> {
  const hook = runtime.config.hooks.get(name);
  if (hook === undefined) throw new ApiError(404, `no hook named "${name}"`, "not_found_error", "hook_not_found");
  const secret = runtime.secret(hook.secretBinding);
  if (secret === undefined || secret.trim() === "") {
    services.log({ event: "hook_secret_missing", hook: name, secret: hook.secretBinding });
    throw new ApiError(503, `hook "${name}" is not ready: its secret is not configured`, "service_unavailable_error", "hook_not_configured");
  }
  const raw = await readBodyText(request, services.config.maxBodyBytes);
  const delivery = await verifyInbound(hook, secret, raw, request.headers);
  let payload: unknown;
  try {
    payload = JSON.parse(raw);
  } catch (e) {
    throw badRequest(`the hook body is not valid JSON: ${(e as Error).message}`, null, "invalid_json");
  }
  const event = delivery.event ?? (typeof payload === "object" && payload !== null && typeof (payload as { type?: unknown }).type === "string" ? (payload as { type: string }).type : null);
  let prompt: string;
  try {
    prompt = renderPrompt(hook.template, { payload, hook: name, event });
  } catch (e) {
    if (e instanceof TemplateError) throw new ApiError(422, `the hook's prompt template failed on this payload: ${e.message}`, "invalid_request_error", "template_failed");
    throw e;
  }
  if (prompt.trim() === "") throw new ApiError(422, "the hook's prompt template rendered nothing for this payload", "invalid_request_error", "template_empty");

  const messages = [...(hook.system === null ? [] : [{ role: "system", content: hook.system }]), { role: "user", content: prompt }];
  const body = { model: services.config.modelId, ...hook.request, messages, webhook: { url: hook.destination.url, secret_id: hook.destination.secretId } };
  let jobRequest: JobRequest;
  let url: string;
  try {
    jobRequest = parseJobRequest(body, services.config);
    url = await checkWebhook(runtime, jobRequest, null);
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) {
      // The caller's payload is fine; the hook's configuration is not.
      services.log({ event: "hook_misconfigured", hook: name, error: e.message });
      throw new ApiError(500, `hook "${name}" is misconfigured: ${e.message}`, "server_error", "hook_misconfigured");
    }
    throw e;
  }
  const owner = hook.ownerKeySha256 ?? `hook:${name}`;
  const spec: JobSpec = {
    id: await jobIdFor(`hook:${name}`, delivery.deliveryId),
    owner,
    kind: jobRequest.kind,
    body: jobRequest.body,
    // A redelivery of the same event (same id, same body) finds its job; a different body under a reused id conflicts.
    requestHash: await sha256Hex(raw),
    webhook: { url, secretId: jobRequest.webhook.secretId },
    metadata: { hook: name, delivery_id: delivery.deliveryId.slice(0, 512), ...(event === null ? {} : { event: event.slice(0, 512) }) },
    source: `hook:${name}`,
    operatorSigned: true,
  };
  return store(runtime, spec);
}
