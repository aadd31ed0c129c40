/**
 * What the job machinery needs from its platform, as interfaces: the job store (one Durable Object per
 * job), the endpoint registry, the queue and its dead-letter queue, and the hooks' secrets. The Worker
 * builds it from its bindings (worker-runtime.ts); the handlers and the consumer only see this.
 */
import type { JobsConfig } from "./config.js";
import type { EndpointState } from "./endpoint-object.js";
import type { AfterRecord, CancelResult, Claim, CreateResult, DeliveryRecord, GenerationResult, JobMessage } from "./job-object.js";
import type { JobSpec, JobView } from "./job.js";

/** One job's store: the `GenerationJob` object's methods (see job-object.ts for their contracts). */
export interface JobStore {
  create(spec: JobSpec): Promise<CreateResult>;
  discard(): Promise<void>;
  read(owner: string): Promise<JobView | null>;
  claim(runId: string, leaseMs: number): Promise<Claim>;
  recordGeneration(runId: string, result: GenerationResult): Promise<AfterRecord>;
  release(runId: string, nextAttemptAt: number): Promise<void>;
  recordDelivery(runId: string, record: DeliveryRecord): Promise<AfterRecord>;
  cancel(owner: string): Promise<CancelResult>;
  deadLetter(reason: string): Promise<void>;
}

/** One callback URL's standing (see endpoint-object.ts). */
export interface EndpointStore {
  disabled(): Promise<EndpointState | null>;
  disable(reason: string, forMs: number): Promise<EndpointState>;
}

export interface JobRuntime {
  config: JobsConfig;
  job(id: string): JobStore;
  endpoint(url: string): EndpointStore;
  /** Puts a job on the work queue. */
  enqueue(message: JobMessage): Promise<void>;
  /** Hands a job to the dead-letter queue. */
  deadLetter(message: JobMessage): Promise<void>;
  /** A Worker secret by name (inbound hooks name theirs in WEBHOOK_HOOKS). */
  secret(name: string): string | undefined;
}
