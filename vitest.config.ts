import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

// One worker per core but one: the main process transforms, collects and reports for every worker, and a worker
// that waits more than 60 s for it fails the run. On a 2-core host this is a single worker.
const workers = Math.max(1, availableParallelism() - 1)

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: workers,
    minWorkers: 1,
    // A failing assertion over a large tensor or syntax tree must not stall the reporter on its diff.
    diff: { maxDepth: 6, truncateThreshold: 200 },
    chaiConfig: { truncateThreshold: 200 }
  }
})
