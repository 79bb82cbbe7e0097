/** DynamicMatmul on the simulator: tiling and fallback, dense, primed, patched and one-hot paths, bad input, close. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Ane from "../../src/services/Ane.js"
import * as DynamicMatmul from "../../src/services/DynamicMatmul.js"
import type { SimulatorOptions } from "../../src/sim/SimBackend.js"
import { doubleText } from "./programs.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"

const sim = (o: SimulatorOptions = {}) => Effect.provide(Ane.layerSimulator({ latency: "off", ...o }))

/** Multiples of 1/8 in [-2, 2]: exact in fp16, and every sum below stays exact in float32. */
const values = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => ((((i + 1) * 7919 + seed * 104729) % 33) - 16) / 8)

/** y = x·w in float64 (x [batch, inDim], w [inDim, outDim], row-major). */
const reference = (x: Float32Array, w: Float32Array, batch: number, inDim: number, outDim: number) => {
  const y = new Float64Array(batch * outDim)
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0
      for (let d = 0; d < inDim; d++) s += x[b * inDim + d]! * w[d * outDim + o]!
      y[b * outDim + o] = s
    }
  }
  return y
}

/**
 * The program stores activations, weights and the product in fp16; inputs here are exact in fp16 and the float32
 * accumulation is exact, so the only error is the final rounding to fp16: at most half an ulp, 2^-11 relative.
 */
const expectClose = (got: Float32Array, want: Float64Array) => {
  expect(got.length).toBe(want.length)
  let worst = 0
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) - Math.abs(want[i]!) * 2 ** -11)
  expect(worst).toBeLessThanOrEqual(0)
}

describe("DynamicMatmul tiles", () => {
  it("lists the fallback widths of the spec", () => {
    expect([1000, 512, 300, 100, 64, 2, 1].map(DynamicMatmul.defaultTileCandidates)).toEqual([
      [512, 384, 256, 128, 64], [384, 256, 128, 64], [256, 128, 64], [64], [63], [1], []
    ])
    expect(DynamicMatmul.tilesOf(48, 20)).toEqual([{ outOffset: 0, width: 20 }, { outOffset: 20, width: 20 },
      { outOffset: 40, width: 8 }])
  })

  it.scoped("computes y = x·w with tiles, compiling each distinct width once", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const [batch, inDim, outDim] = [8, 32, 48]
      const mm = yield* DynamicMatmul.make({ batch, inDim, outDim, tileOut: 20 })
      expect(mm.tiles.map((t) => t.width)).toEqual([20, 20, 8])
      expect(yield* ane.compileCount).toBe(2)
      for (const seed of [1, 2]) {
        const x = values(batch * inDim, seed), w = values(inDim * outDim, seed + 10)
        expectClose(yield* mm.eval(x, w), reference(x, w, batch, inDim, outDim))
      }
      // New weights, same program: no compile.
      expect(yield* ane.compileCount).toBe(2)
    }).pipe(sim()))

  it.scoped("gives each of several concurrent calls its own product", () =>
    Effect.gen(function*() {
      const [batch, inDim, outDim] = [4, 16, 24]
      const mm = yield* DynamicMatmul.make({ batch, inDim, outDim, tileOut: 8 })
      const calls = [1, 2, 3, 4, 5].map((seed) => ({ x: values(batch * inDim, seed), w: values(inDim * outDim, seed * 7) }))
      const ys = yield* Effect.all(calls.map((c) => mm.eval(c.x, c.w)), { concurrency: "unbounded" })
      ys.forEach((y, i) => expectClose(y, reference(calls[i]!.x, calls[i]!.w, batch, inDim, outDim)))
    }).pipe(sim()))

  it.scoped("falls back to narrower tiles when the full width does not compile, releasing the failed attempt", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const [batch, inDim, outDim] = [4, 16, 100]
      const mm = yield* DynamicMatmul.make({ batch, inDim, outDim })
      expect(mm.tiles).toEqual([{ outOffset: 0, width: 64 }, { outOffset: 64, width: 36 }])
      // Per width: the model, its own request and one pooled request (each request with its two surfaces). The
      // failed full-width attempt holds nothing.
      expect(yield* ane.liveHandles).toBe(2 * (1 + 3 + 3))
      const x = values(batch * inDim, 3), w = values(inDim * outDim, 4)
      expectClose(yield* mm.eval(x, w), reference(x, w, batch, inDim, outDim))
    }).pipe(sim({ faults: [{ stage: "compile", nth: 1 }] })))

  it.scoped("fails with the full-width CompileError, naming the widths tried, and leaks nothing", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      const error = yield* Effect.flip(DynamicMatmul.make({ batch: 2, inDim: 8, outDim: 100 }).pipe(Scope.extend(scope)))
      expect(error._tag).toBe("CompileError")
      expect(error.message).toContain("tile widths 64 failed too")
      expect(yield* ane.liveHandles).toBe(0)
      yield* Scope.close(scope, Exit.void)
    }).pipe(sim({ faults: [{ stage: "compile", nth: 1 }, { stage: "compile", nth: 2 }] })))

  it.scoped("refuses bad sizes before compiling", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      for (const [o, argument] of [
        [{ batch: 0, inDim: 4, outDim: 4 }, "batch"],
        [{ batch: 2, inDim: 1.5, outDim: 4 }, "inDim"],
        [{ batch: 2, inDim: 4, outDim: -1 }, "outDim"],
        [{ batch: 2, inDim: 4, outDim: 4, tileOut: -2 }, "tileOut"],
        [{ batch: 2, inDim: 5000, outDim: 4 }, "inDim"]
      ] as const) {
        const error = yield* Effect.flip(DynamicMatmul.make(o))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", argument })
      }
      expect(yield* ane.compileCount).toBe(0)
    }).pipe(sim()))
})

describe("DynamicMatmul primed weights", () => {
  const [batch, inDim, outDim] = [6, 24, 40]

  it.scoped("primes, patches rows and evaluates channel-first activations", () =>
    Effect.gen(function*() {
      const mm = yield* DynamicMatmul.make({ batch, inDim, outDim, tileOut: 16 })
      const w = values(inDim * outDim, 5)
      const x = values(batch * inDim, 6)
      const xCF = new Float32Array(inDim * batch)
      for (let b = 0; b < batch; b++) for (let d = 0; d < inDim; d++) xCF[d * batch + b] = x[b * inDim + d]!
      yield* mm.primeWeights(w)
      const yCF = new Float32Array(outDim * batch)
      const stats = yield* mm.evalChannelFirstInto(yCF, xCF)
      expect(stats.executionNs).toBeGreaterThan(0)
      const toRowMajor = (cf: Float32Array) => {
        const y = new Float32Array(batch * outDim)
        for (let o = 0; o < outDim; o++) for (let b = 0; b < batch; b++) y[b * outDim + o] = cf[o * batch + b]!
        return y
      }
      expectClose(toRowMajor(yCF), reference(x, w, batch, inDim, outDim))
      // Patch rows 3 and 17 only; the rest of the surfaces keep the primed weights.
      const w2 = Float32Array.from(w)
      for (const d of [3, 17]) for (let o = 0; o < outDim; o++) w2[d * outDim + o] = values(1, d + o)[0]! + 0.5
      const scratch = Float32Array.from(w2)
      for (let i = 0; i < scratch.length; i++) if (Math.floor(i / outDim) !== 3 && Math.floor(i / outDim) !== 17) scratch[i] = 99
      yield* mm.updateWeightRows(scratch, [17, 3, 3])
      yield* mm.evalChannelFirstInto(yCF, xCF)
      expectClose(toRowMajor(yCF), reference(x, w2, batch, inDim, outDim))
    }).pipe(sim()))

  it.scoped("looks rows up one-hot, cleaning up the previous call's positions", () =>
    Effect.gen(function*() {
      const mm = yield* DynamicMatmul.make({ batch, inDim, outDim, tileOut: 32 })
      const w = values(inDim * outDim, 7)
      // A dense call first: the one-hot path must clear its activations.
      yield* mm.eval(values(batch * inDim, 8), w)
      for (const xs of [[5, 0, 23], [1, 1, 1, 1, 1, 1], [], [22]]) {
        const all = new Float32Array(batch * outDim).fill(Number.NaN)
        yield* mm.evalOneHotInto(all, xs)
        for (let b = 0; b < batch; b++) {
          const want = b < xs.length ? Array.from(w.subarray(xs[b]! * outDim, (xs[b]! + 1) * outDim)) : new Array(outDim).fill(0)
          expect(Array.from(all.subarray(b * outDim, (b + 1) * outDim))).toEqual(want)
        }
      }
      const some = new Float32Array(2 * outDim)
      yield* mm.evalOneHotInto(some, [4, 9])
      expect(Array.from(some.subarray(outDim))).toEqual(Array.from(w.subarray(9 * outDim, 10 * outDim)))
    }).pipe(sim()))

  it.scoped("copies its outputs into another model's input channels", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const mm = yield* DynamicMatmul.make({ batch: 8, inDim: 4, outDim: 6, tileOut: 4 })
      const target = yield* ane.compile(CompileOptions.mil({ text: doubleText(10, 8) }))
      const w = values(4 * 6, 9), x = values(8 * 4, 10)
      const y = yield* mm.eval(x, w)
      yield* mm.copyOutputToInput(target, 0, 2)
      const back = yield* target.readOutputF32Channels(0, 2, 6)
      yield* target.eval
      const doubled = yield* target.readOutputF32Channels(0, 2, 6)
      for (let o = 0; o < 6; o++) {
        for (let b = 0; b < 8; b++) expect(doubled[o * 8 + b]).toBe(2 * y[b * 6 + o]!)
      }
      expect(back.length).toBe(48)
      const error = yield* Effect.flip(mm.copyOutputToInput(target, 0, 5))
      expect(error).toMatchObject({ _tag: "InvalidArgumentError", argument: "dstChannel" })
    }).pipe(sim()))

  it.scoped("times tiles by the wall clock when the engine reports no time", () =>
    Effect.gen(function*() {
      const mm = yield* DynamicMatmul.make({ batch: 2, inDim: 4, outDim: 10, tileOut: 4 })
      const stats = yield* mm.evalInto(new Float32Array(20), values(8, 1), values(40, 2))
      expect(stats.wallClockTiles).toBe(3)
      expect(stats.executionNs).toBeGreaterThan(0)
    }).pipe(sim({ latency: { fixedUs: 0 } })))
})

describe("DynamicMatmul bad input and close", () => {
  it.scoped("names what was wrong and touches nothing", () =>
    Effect.gen(function*() {
      const mm = yield* DynamicMatmul.make({ batch: 2, inDim: 4, outDim: 3 })
      const fail = <A, E>(e: Effect.Effect<A, E>) => Effect.flip(e)
      expect(yield* fail(mm.evalChannelFirst(new Float32Array(8)))).toMatchObject({ argument: "weights" })
      expect(yield* fail(mm.evalOneHotInto(new Float32Array(6), [0]))).toMatchObject({ argument: "weights" })
      expect(yield* fail(mm.eval(new Float32Array(7), new Float32Array(12)))).toMatchObject({
        _tag: "InvalidArgumentError", argument: "x", actual: "7 values"
      })
      expect(yield* fail(mm.eval(new Float32Array(8), new Float32Array(11)))).toMatchObject({ argument: "w" })
      yield* mm.primeWeights(values(12, 1))
      expect(yield* fail(mm.updateWeightRows(values(12, 1), [0, 4]))).toMatchObject({ argument: "rows[1]", actual: "4" })
      expect(yield* fail(mm.evalOneHotInto(new Float32Array(6), [0, 1, 2]))).toMatchObject({ argument: "xs" })
      expect(yield* fail(mm.evalOneHotInto(new Float32Array(6), [-1]))).toMatchObject({ argument: "xs[0]" })
      expect(yield* fail(mm.evalOneHotInto(new Float32Array(5), [1]))).toMatchObject({ argument: "dst" })
      expect(yield* fail(mm.readOutputChannelFirst(new Float32Array(5)))).toMatchObject({ argument: "dstCF" })
    }).pipe(sim()))

  it.scoped("fails with ClosedError once its scope has closed", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      const mm = yield* DynamicMatmul.make({ batch: 2, inDim: 4, outDim: 3 }).pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      expect(yield* ane.liveHandles).toBe(0)
      const error = yield* Effect.flip(mm.eval(values(8, 1), values(12, 2)))
      expect(error._tag).toBe("ClosedError")
    }).pipe(sim()))
})
