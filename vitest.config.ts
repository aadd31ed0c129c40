import { defineConfig } from "vitest/config";

// Node-side tests: the text core, the model core, the GPU worker (as a real child process).
// Worker (workerd) tests live in vitest.workers.config.ts.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/edge/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});
