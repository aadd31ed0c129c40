/// <reference types="@cloudflare/workers-types" />
/**
 * The Worker's `queue()` handler for webhook-driven generation: batches from the job queue go to the job
 * consumer, batches from a dead-letter queue (a queue whose name ends in `-dlq`, as in wrangler.toml) to the
 * dead-letter consumer. Messages of a batch are independent jobs and run concurrently.
 */
import { workerServices, type Env } from "../worker-services.js";
import { processDeadLetter, processJobMessage } from "./consumer.js";
import { workerJobRuntime } from "./worker-runtime.js";

export function isDeadLetterQueue(queueName: string): boolean {
  return queueName.endsWith("-dlq");
}

export async function handleJobQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const runtime = workerJobRuntime(env);
  if (runtime === undefined) {
    // Bindings missing: leave the messages for a deployment that has them (they retry, then dead-letter).
    batch.retryAll({ delaySeconds: 60 });
    return;
  }
  const services = { ...workerServices(env, ctx), jobs: runtime };
  const process = isDeadLetterQueue(batch.queue) ? processDeadLetter : processJobMessage;
  await Promise.all(batch.messages.map((message) => process(message, runtime, services)));
}
