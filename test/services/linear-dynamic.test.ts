/** The dynamic linear executor on the simulator: one compile per shape, PyTorch and IO layouts, one-hot, close. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Ane from "../../src/services/Ane.js"
import * as Linear from "../../src/services/Linear.js"

const sim = Effect.provide(Ane.layerSimulator({ latency: "off" }))

/** Multiples of 1/8 in [-2, 2]: exact in fp16, with every sum below exact in float32. */
const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => ((((i + 3) * 7919 + seed * 104729) % 33) - 16) / 8)

/** y = x·wᵀ in float64; w is [outDim, inDim]. */
const reference = (x: Float32Array, w: Float32Array, s: Linear.LinearSizes) =>
  Float64Array.from({ length: s.batch * s.outDim }, (_, k) => {
    const t = Math.floor(k / s.outDim), o = k % s.outDim
    let sum = 0
    for (let i = 0; i < s.inDim; i++) sum += x[t * s.inDim + i]! * w[o * s.inDim + i]!
    return sum
  })

/** Inputs exact in fp16 and an exact float32 sum: only the result's rounding to fp16 remains (2^-11 relative). */
const expectClose = (got: Float32Array, want: Float64Array) => {
  expect(got.length).toBe(want.length)
  for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -11)
}

const transpose = (w: Float32Array, rows: number, cols: number) =>
  Float32Array.from({ length: w.length }, (_, k) => w[(k % rows) * cols + Math.floor(k / rows)]!)

describe("Linear.makeDynamic", () => {
  const s = { batch: 5, inDim: 24, outDim: 40 }

  it.scoped("computes y = x·wᵀ for changing weights with one compile per shape", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.makeDynamic({ tileOut: 16 })
      const first = yield* linear.linearWithStats(values(5 * 24, 1), values(40 * 24, 2), s)
      expect(first.stats.compiled).toBe(true)
      expectClose(first.y, reference(values(5 * 24, 1), values(40 * 24, 2), s))
      for (const seed of [3, 4]) {
        const x = values(5 * 24, seed), w = values(40 * 24, seed + 7)
        const { y, stats } = yield* linear.linearWithStats(x, w, s)
        expect(stats.compiled).toBe(false)
        expectClose(y, reference(x, w, s))
      }
      // The IO-layout fast path gives the same numbers.
      const x = values(5 * 24, 9), w = values(40 * 24, 10)
      const dst = new Float32Array(5 * 40)
      yield* linear.linearIOInto(dst, x, transpose(w, 40, 24), s)
      expectClose(dst, reference(x, w, s))
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 3, kernels: 1 })
      // Tiles 16, 16, 8: two distinct widths, two programs, and no more for new weights.
      expect(yield* ane.compileCount).toBe(2)
    }).pipe(sim))

  it.scoped("compiles a shape once when callers race, and keeps their weights apart", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.makeDynamic()
      const calls = [1, 2, 3, 4].map((seed) => ({ x: values(5 * 24, seed), w: values(40 * 24, seed * 3) }))
      const ys = yield* Effect.all(calls.map((c) => linear.linear(c.x, c.w, s)), { concurrency: "unbounded" })
      ys.forEach((y, i) => expectClose(y, reference(calls[i]!.x, calls[i]!.w, s)))
      expect(yield* ane.compileCount).toBe(1)
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 3, kernels: 1 })
    }).pipe(sim))

  it.scoped("primes IO weights, patches rows and looks rows up one-hot", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.makeDynamic()
      const wIO = values(24 * 40, 5)
      const dst = new Float32Array(5 * 40)
      const notPrimed = yield* Effect.flip(linear.linearOneHotIOInto(dst, [1], s))
      expect(notPrimed).toMatchObject({ _tag: "InvalidArgumentError", argument: "weights" })
      yield* linear.primeWeightsIO(wIO, s)
      yield* linear.linearOneHotIOInto(dst, [7, 0], s)
      expect(Array.from(dst.subarray(0, 40))).toEqual(Array.from(wIO.subarray(7 * 40, 8 * 40)))
      expect(Array.from(dst.subarray(80)).every((v) => v === 0)).toBe(true)
      const patched = Float32Array.from(wIO, (v, k) => (Math.floor(k / 40) === 7 ? v + 1 : v))
      yield* linear.updateWeightsIORows(patched, [7], s)
      const two = new Float32Array(2 * 40)
      yield* linear.linearOneHotIOInto(two, [7, 0], s)
      expect(Array.from(two.subarray(0, 40))).toEqual(Array.from(patched.subarray(7 * 40, 8 * 40)))
      expect(Array.from(two.subarray(40))).toEqual(Array.from(wIO.subarray(0, 40)))
    }).pipe(sim))

  it.scoped("refuses bad sizes and lengths before compiling, and fails with ClosedError after close", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      const linear = yield* Linear.makeDynamic().pipe(Scope.extend(scope))
      expect(yield* Effect.flip(linear.linear(values(4, 1), values(4, 1), { batch: 1.5, inDim: 2, outDim: 2 })))
        .toMatchObject({ _tag: "InvalidArgumentError", argument: "sizes.batch" })
      expect(yield* Effect.flip(linear.linear(values(119, 1), values(960, 1), s)))
        .toMatchObject({ argument: "x", actual: "length 119" })
      expect(yield* Effect.flip(linear.linearIOInto(new Float32Array(200), values(120, 1), values(959, 1), s)))
        .toMatchObject({ argument: "wIO" })
      expect(yield* Effect.flip(linear.linearInto(new Float32Array(199), values(120, 1), values(960, 1), s)))
        .toMatchObject({ argument: "dst" })
      expect(yield* ane.compileCount).toBe(0)
      yield* linear.prepare(s)
      expect(yield* ane.compileCount).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* ane.liveHandles).toBe(0)
      expect(yield* Effect.flip(linear.linear(values(120, 1), values(960, 1), s))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(sim))
})
