import { defineConfig } from "vitest/config"

// The real-engine suite: `npm run test:hardware` on a Mac with an ANE. Not part of `npm test`.
export default defineConfig({
  test: {
    include: ["test/hardware/**/*.hardware.ts"],
    testTimeout: 120_000,
    pool: "forks",
    poolOptions: { forks: { singleFork: true } }
  }
})
