/// <reference types="@cloudflare/workers-types" />
/**
 * The job runtime over the Worker's bindings: the `GENERATION_JOBS` and `WEBHOOK_ENDPOINTS` Durable Object
 * namespaces and the `JOB_QUEUE` / `JOB_DEAD_LETTERS` queue producers (wrangler.toml). Absent bindings mean
 * the deployment has no webhook-driven generation, and the routes answer 501.
 */
import { parseJobsConfig, type JobsConfig, type JobsVars } from "./config.js";
import type { WebhookEndpoint } from "./endpoint-object.js";
import type { GenerationJob, JobMessage } from "./job-object.js";
import type { EndpointStore, JobRuntime, JobStore } from "./runtime.js";

export interface JobBindings extends JobsVars {
  GENERATION_JOBS?: DurableObjectNamespace<GenerationJob>;
  WEBHOOK_ENDPOINTS?: DurableObjectNamespace<WebhookEndpoint>;
  JOB_QUEUE?: Queue<JobMessage>;
  JOB_DEAD_LETTERS?: Queue<JobMessage>;
}

const configs = new WeakMap<object, JobsConfig>();

function configFor(env: JobBindings): JobsConfig {
  let config = configs.get(env);
  if (config === undefined) {
    config = parseJobsConfig(env);
    configs.set(env, config);
  }
  return config;
}

export function workerJobRuntime(env: JobBindings): JobRuntime | undefined {
  const { GENERATION_JOBS: jobs, WEBHOOK_ENDPOINTS: endpoints, JOB_QUEUE: queue, JOB_DEAD_LETTERS: deadLetters } = env;
  if (jobs === undefined || endpoints === undefined || queue === undefined || deadLetters === undefined) return undefined;
  return {
    // Parsed on first use, so a mistake in the jobs' settings fails job requests only, not the whole gateway.
    get config() {
      return configFor(env);
    },
    // RPC stubs return the objects' results over the wire; the shapes are the interfaces' own.
    job: (id) => jobs.get(jobs.idFromName(id)) as unknown as JobStore,
    endpoint: (url) => endpoints.get(endpoints.idFromName(url)) as unknown as EndpointStore,
    enqueue: async (message) => {
      await queue.send(message, { contentType: "json" });
    },
    deadLetter: async (message) => {
      await deadLetters.send(message, { contentType: "json" });
    },
    secret: (name) => {
      const value = (env as Record<string, unknown>)[name];
      return typeof value === "string" ? value : undefined;
    },
  };
}
