import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Worker tests: test/edge/** runs inside workerd (the Workers runtime) with the bindings of wrangler.toml,
// against real GPU worker processes started by test/edge/global-setup.ts.
export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          GPU_WORKERS: inject("gpuWorkers"),
          WORKER_SECRET: inject("workerSecret"),
          SUPERVISOR_URL: inject("supervisorUrl"),
          GOLDEN_VECTORS: inject("goldenVectors"),
          // Short timers so keep-alives, stalls and back-offs happen within a test's time.
          SSE_KEEPALIVE_MS: "50",
          GPU_STALL_TIMEOUT_MS: "2000",
          GPU_CONNECT_TIMEOUT_MS: "2000",
          READYZ_TIMEOUT_MS: "1000",
          READYZ_TTL_MS: "200",
          WORKER_DOWN_MS: "1000",
          // Webhook jobs: the receiver, signing and hook secrets, short back-offs (test/edge/jobs/receiver-setup.ts).
          ...inject("jobBindings"),
        },
        // A second, tight limiter for the rate-limit test (the deployed one allows 600/min).
        ratelimits: { TIGHT_RATE_LIMITER: { namespace_id: "9001", simple: { limit: 3, period: 60 } } },
        // A queue nobody consumes: jobs submitted with it as JOB_QUEUE wait for a test to run their consumer.
        queueProducers: { JOB_QUEUE_HELD: { queueName: "llama-edge-jobs-held" } },
      },
    })),
  ],
  test: {
    include: ["test/edge/**/*.test.ts"],
    globalSetup: ["test/edge/global-setup.ts", "test/edge/jobs/receiver-setup.ts"],
    testTimeout: 30_000,
    // The gateway logs one JSON line per request: show them only for failing tests.
    silent: "passed-only",
    hookTimeout: 120_000,
  },
});
