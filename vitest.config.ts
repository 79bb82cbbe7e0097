import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // A failing assertion over a large tensor or syntax tree must not stall the reporter on its diff.
    diff: { maxDepth: 6, truncateThreshold: 200 },
    chaiConfig: { truncateThreshold: 200 }
  }
})
