import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type BenchOptions, benchCommand, percentile } from "../../src/cli/bench.js"

const base: BenchOptions = {
  program: "examples/linear.mil",
  weights: Option.none(),
  iterations: 5,
  warmup: 1,
  mode: "sync",
  backend: "simulator",
  numerics: "ane",
  rules: "error",
  latency: "off",
  json: true
}

describe("ane bench", () => {
  it("percentile uses the nearest rank", () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    expect(percentile(s, 0.1)).toBe(1)
    expect(percentile(s, 0.5)).toBe(5)
    expect(percentile(s, 0.9)).toBe(9)
    expect(percentile(s, 1)).toBe(10)
    expect(percentile([], 0.5)).toBeNaN()
  })

  it.effect("times sync evals of the example on the simulator with ordered percentiles and consistent throughput", () =>
    Effect.gen(function*() {
      const r = yield* benchCommand(base)
      expect(r.backend).toBe("simulator")
      expect(r.iterations).toBe(5)
      expect(r.eval_us_p10!).toBeLessThanOrEqual(r.eval_us_p50!)
      expect(r.eval_us_p50!).toBeLessThanOrEqual(r.eval_us_p90!)
      expect(r.eval_us_p90!).toBeLessThanOrEqual(r.eval_us_p99!)
      // examples/linear.mil: a 64→64 1×1 conv over 384 positions = 2·64·64·384 multiply-adds, plus the bias add.
      expect(r.flops_per_eval).toBeGreaterThanOrEqual(2 * 64 * 64 * 384)
      expect(r.evals_per_s).toBeCloseTo(1e6 / r.eval_us_mean, -1)
      expect(r.gflops).toBeCloseTo(r.flops_per_eval / r.eval_us_mean / 1e3, 2)
      // The simulator's modelled engine call: the default chip's 95 µs dispatch floor plus roughly the program's
      // FLOPs over its 10.93 TFLOP/s.
      expect(r.engine_time).toBe("modelled")
      expect(r.engine_us).toBeGreaterThan(95 + (2 * 64 * 64 * 384) / 10.93e6)
      expect(r.engine_us).toBeLessThan(95 + (4 * 64 * 64 * 384) / 10.93e6)
    }))

  it.effect("runs the pipelined mode through RequestPool.evalStream and reports its depth", () =>
    Effect.gen(function*() {
      const r = yield* benchCommand({ ...base, mode: "stream", depth: 3 })
      expect(r.mode).toBe("stream")
      expect(r.depth).toBe(3)
      expect(r.eval_us_p50).toBeUndefined()
      expect(r.eval_us_mean).toBeGreaterThan(0)
    }))

  it.effect("rejects bad counts with the option name, the expectation and the value", () =>
    Effect.gen(function*() {
      const its = yield* Effect.flip(benchCommand({ ...base, iterations: 0 }))
      expect(its.message).toContain("--iterations")
      expect(its.message).toContain("got 0")
      const depth = yield* Effect.flip(benchCommand({ ...base, mode: "stream", depth: 128 }))
      expect(depth._tag).toBe("InvalidArgumentError")
      expect(depth.message).toContain("1..127")
      const warm = yield* Effect.flip(benchCommand({ ...base, warmup: -1 }))
      expect(warm.message).toContain("--warmup")
    }))

  it.effect("a missing program is a typed error naming the path", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(benchCommand({ ...base, program: "no/such.mil" }))
      expect(e._tag).toBe("InvalidArgumentError")
      expect(e.message).toContain("no/such.mil")
    }))

  it.effect("--backend hardware fails with NoAneError on a machine without the engine (any OS but macOS)", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(benchCommand({ ...base, backend: "hardware" }))
      expect(e._tag).toBe(process.platform === "darwin" ? e._tag : "NoAneError")
    }))
})
