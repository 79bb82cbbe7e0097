/** The static-weight linear executor on the simulator: numerics, cache key, caching, races, serialisation, errors. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { linear as generateLinear } from "../../src/mil/generators/linear.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import { Backend, type BackendModel } from "../../src/services/Backend.js"
import * as Linear from "../../src/services/Linear.js"
import * as SimBackend from "../../src/sim/SimBackend.js"

const sim = (options: SimBackend.SimulatorOptions = {}) => Ane.layerSimulator({ latency: "off", ...options })

/** Deterministic values in [-1, 1] kept off fp16's flushed range (|v| ≥ 2^-10), so the bound below applies. */
const data = (n: number, seed: number) => {
  let s = (seed * 2654435761) >>> 0 || 1
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    const v = (s / 4294967296) * 2 - 1
    return Math.abs(v) < 2 ** -10 ? 2 ** -10 : v
  })
}

/** Small integers: every product and partial sum is exact in fp16, so the engine's answer must be exact. */
const ints = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + seed * 5) % 9) - 4)

/** y = x·wᵀ in float64, with Σ|x_i·w_i| per element for the error bound. */
const reference = (x: Float32Array, w: Float32Array, { batch, inDim, outDim }: Linear.LinearSizes) => {
  const y = new Float64Array(batch * outDim)
  const mag = new Float64Array(batch * outDim)
  for (let t = 0; t < batch; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0
      let m = 0
      for (let i = 0; i < inDim; i++) {
        const p = x[t * inDim + i]! * w[o * inDim + i]!
        s += p
        m += Math.abs(p)
      }
      y[t * outDim + o] = s
      mag[t * outDim + o] = m
    }
  }
  return { y, mag }
}

/**
 * Error bound of one output. The program casts x to fp16 and stores W in fp16 (relative error ≤ u = 2^-11 each),
 * multiplies exactly (two 11-bit significands fit fp32's 24), accumulates inDim terms in fp32 (≤ inDim·2^-24 of
 * Σ|x_i·w_i|, rounded up to 2^-23 for slack), and rounds y to fp16 (≤ u·|y|, or 2^-14 absolute when y is flushed
 * below fp16's smallest normal). With |y| ≤ S = Σ|x_i·w_i|: |ŷ − y| ≤ S·(3u + 3u² + inDim·2^-23) + 2^-14; 3u² is
 * folded into 2^-20. Engines rounding every product to fp16 inside the sum are outside this bound.
 */
const bound = (mag: number, inDim: number) => mag * (3 * 2 ** -11 + 2 ** -20 + inDim * 2 ** -23) + 2 ** -14

const expectWithinBound = (y: Float32Array, x: Float32Array, w: Float32Array, sizes: Linear.LinearSizes) => {
  const r = reference(x, w, sizes)
  expect(y.length).toBe(sizes.batch * sizes.outDim)
  const bad: Array<string> = []
  for (let k = 0; k < y.length; k++) {
    const err = Math.abs(y[k]! - r.y[k]!)
    if (!(err <= bound(r.mag[k]!, sizes.inDim))) bad.push(`y[${k}] = ${y[k]} vs ${r.y[k]} (bound ${bound(r.mag[k]!, sizes.inDim)})`)
  }
  expect(bad.slice(0, 5)).toEqual([])
}

/** Independent FNV-1a-64 through BigInt, for comparison with the executor's 32-bit split. */
const fnvBigInt = (w: Float32Array) => {
  const bytes = new Uint8Array(w.length * 4)
  const view = new DataView(bytes.buffer)
  w.forEach((v, i) => view.setFloat32(i * 4, v, true))
  let h = 0xcbf29ce484222325n
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn
  return h.toString(16)
}

/**
 * The simulator behind hooks: compiles wait for `gate` (counting arrivals in `started`), and each evaluation yields
 * to other fibers in the middle while recording how many run at once.
 */
const hookedSimulator = (gate: Deferred.Deferred<void>) => {
  const probe = { started: 0, inEval: 0, maxInEval: 0 }
  const backend = Layer.scoped(
    Backend,
    Effect.map(SimBackend.make({ latency: "off" }), (b): Backend["Type"] => ({
      ...b,
      compile: (options) =>
        Effect.sync(() => probe.started++).pipe(
          Effect.zipRight(Deferred.await(gate)),
          Effect.zipRight(b.compile(options)),
          Effect.map((m): BackendModel => ({
            ...m,
            request: {
              ...m.request,
              evalWithStats: Effect.suspend(() => {
                probe.maxInEval = Math.max(probe.maxInEval, ++probe.inEval)
                return Effect.yieldNow().pipe(
                  Effect.zipRight(Effect.yieldNow()),
                  Effect.zipRight(m.request.evalWithStats),
                  Effect.ensuring(Effect.sync(() => probe.inEval--))
                )
              })
            }
          }))
        )
    }))
  )
  return { probe, layer: Ane.layerBackend().pipe(Layer.provide(backend), Layer.orDie) }
}

const waitUntil = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000 && !cond(); i++) yield* Effect.yieldNow()
    expect(cond()).toBe(true)
  })

describe("Linear cache key", () => {
  it("matches the spec's vectors", () => {
    expect(Linear.cacheKey(new Float32Array([1, 0, 0, 1]), { batch: 1, inDim: 2, outDim: 2 })).toBe("1:2:2:63c34a5903e80c75")
    const eye = new Float32Array(16)
    for (let i = 0; i < 4; i++) eye[i * 5] = 1
    expect(Linear.cacheKey(eye, { batch: 1, inDim: 4, outDim: 4 })).toBe("1:4:4:1b0c97ae01a7ec05")
  })

  it("agrees with a BigInt FNV-1a-64 on negative zero, NaN, infinities, subnormals and random weights", () => {
    const special = new Float32Array([-0, 0, NaN, Infinity, -Infinity, 1e-45, -3.4e38, 0.1])
    for (const w of [special, data(257, 3), data(1, 9), new Float32Array(0)]) expect(Linear.weightHash(w)).toBe(fnvBigInt(w))
  })

  it("hashes the bit pattern: 0 and -0 give different keys, and a view hashes only its own elements", () => {
    expect(Linear.weightHash(new Float32Array([0]))).not.toBe(Linear.weightHash(new Float32Array([-0])))
    const base = data(8, 1)
    expect(Linear.weightHash(base.subarray(2, 6))).toBe(fnvBigInt(base.slice(2, 6)))
  })

  it("writes the hash as unpadded lowercase hex", () => {
    // About one hash in 16 has a zero top nibble, so 199 seeds exercise the unpadded form.
    for (let seed = 1; seed < 200; seed++) {
      const h = Linear.weightHash(data(3, seed))
      expect(h).toMatch(/^[1-9a-f][0-9a-f]*$/)
      expect(h).toBe(fnvBigInt(data(3, seed)))
    }
  })
})

describe("Linear on the simulator", () => {
  it.scoped("computes y = x·wᵀ exactly where fp16 is exact, with batch on the spatial axis", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.make()
      const sizes = { batch: 3, inDim: 5, outDim: 4 }
      const x = ints(15, 1)
      const w = ints(20, 2)
      const y = yield* linear.linear(x, w, sizes)
      expect(Array.from(y)).toEqual(Array.from(reference(x, w, sizes).y))
    }).pipe(Effect.provide(sim())))

  for (const sizes of [{ batch: 1, inDim: 2, outDim: 2 }, { batch: 7, inDim: 96, outDim: 40 }, { batch: 16, inDim: 33, outDim: 1 }]) {
    it.scoped(`stays within the fp16 error bound against float64 at ${sizes.batch}×${sizes.inDim}→${sizes.outDim}`, () =>
      Effect.gen(function*() {
        const linear = yield* Linear.make()
        const x = data(sizes.batch * sizes.inDim, 11)
        const w = data(sizes.outDim * sizes.inDim, 12)
        expectWithinBound(yield* linear.linear(x, w, sizes), x, w, sizes)
      }).pipe(Effect.provide(sim())))
  }

  it.scoped("linearInto writes into dst and returns the call's stats; linearWithStats returns both", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.make()
      const sizes = { batch: 4, inDim: 6, outDim: 3 }
      const x = ints(24, 3)
      const w = ints(18, 4)
      const dst = new Float32Array(12).fill(99)
      const stats = yield* linear.linearInto(dst, x, w, sizes)
      expect(stats).toMatchObject({ compiled: true, source: "modelled" })
      expect(Array.from(dst)).toEqual(Array.from(reference(x, w, sizes).y))
      const again = yield* linear.linearWithStats(ints(24, 5), w, sizes)
      expect(again.stats.compiled).toBe(false)
      expect(Array.from(again.y)).toEqual(Array.from(reference(ints(24, 5), w, sizes).y))
    }).pipe(Effect.provide(sim())))

  it.scoped("reports the eval's execution time from Model.evalWithStats", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.make()
      const sizes = { batch: 64, inDim: 256, outDim: 128 }
      const w = data(sizes.outDim * sizes.inDim, 2)
      const { stats } = yield* linear.linearWithStats(data(sizes.batch * sizes.inDim, 1), w, sizes)
      const g = generateLinear({ inDim: 256, outDim: 128, seq: 64, weights: w, io: "fp32" })
      const model = yield* ane.compile(CompileOptions.mil({ text: g.text, weights: g.weights, perfStatsMask: 1 }))
      const direct = yield* model.evalWithStats
      expect(direct.hwExecutionNs).toBeGreaterThan(0)
      expect(stats).toEqual({ compiled: true, hwExecutionNs: direct.hwExecutionNs, source: direct.source })
    }).pipe(Effect.provide(Ane.layerSimulator())))

  it.scoped("compiles once per (shape, weights) pair, counts hits, and spends budget only on misses", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.make()
      const before = yield* ane.compileCount
      const s = { batch: 2, inDim: 4, outDim: 3 }
      const w = data(12, 1)
      expect((yield* linear.linearWithStats(data(8, 1), w, s)).stats.compiled).toBe(true)
      expect((yield* linear.linearWithStats(data(8, 2), w, s)).stats.compiled).toBe(false)
      expect((yield* linear.linearWithStats(data(8, 3), Float32Array.from(w), s)).stats.compiled).toBe(false)
      expect((yield* linear.linearWithStats(data(8, 1), data(12, 2), s)).stats.compiled).toBe(true)
      expect((yield* linear.linearWithStats(data(4, 1), w, { ...s, batch: 1 })).stats.compiled).toBe(true)
      expect(yield* linear.stats).toEqual({ compiles: 3, cacheHits: 2, kernels: 3 })
      expect((yield* ane.compileCount) - before).toBe(3)
    }).pipe(Effect.provide(sim())))

  it.scoped("prepare compiles and caches without evaluating; the next call is a hit", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.make()
      const s = { batch: 2, inDim: 3, outDim: 2 }
      const w = ints(6, 1)
      yield* linear.prepare(w, s)
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 0, kernels: 1 })
      yield* linear.prepare(w, s)
      const { stats, y } = yield* linear.linearWithStats(ints(6, 2), w, s)
      expect(stats.compiled).toBe(false)
      expect(Array.from(y)).toEqual(Array.from(reference(ints(6, 2), w, s).y))
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 2, kernels: 1 })
      expect(yield* ane.compileCount).toBe(1)
    }).pipe(Effect.provide(sim())))

  it.effect("two fibers racing on one key keep one kernel; the loser's is unloaded at once and counts as a hit", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { layer, probe } = hookedSimulator(gate)
      yield* Effect.scoped(Effect.gen(function*() {
        const ane = yield* Ane.Ane
        const linear = yield* Linear.make()
        const s = { batch: 2, inDim: 3, outDim: 2 }
        const w = ints(6, 1)
        const live0 = yield* ane.liveHandles
        const a = yield* Effect.fork(linear.linearWithStats(ints(6, 2), w, s))
        const b = yield* Effect.fork(linear.linearWithStats(ints(6, 3), w, s))
        yield* waitUntil(() => probe.started === 2)
        yield* Deferred.succeed(gate, undefined)
        const ra = yield* Fiber.join(a)
        const rb = yield* Fiber.join(b)
        expect([ra.stats.compiled, rb.stats.compiled].sort()).toEqual([false, true])
        expect(Array.from(ra.y)).toEqual(Array.from(reference(ints(6, 2), w, s).y))
        expect(Array.from(rb.y)).toEqual(Array.from(reference(ints(6, 3), w, s).y))
        expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 1, kernels: 1 })
        expect(yield* ane.compileCount).toBe(2)
        // One model's handles remain: the same number a second, unraced kernel adds.
        const live1 = yield* ane.liveHandles
        yield* linear.prepare(ints(6, 9), s)
        const live2 = yield* ane.liveHandles
        expect(live1 - live0).toBeGreaterThan(0)
        expect(live1 - live0).toBe(live2 - live1)
      })).pipe(Effect.provide(layer))
    }))

  it.effect("serialises write→eval→read per kernel: concurrent calls never share an eval, each gets its own answer", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      yield* Deferred.succeed(gate, undefined)
      const { layer, probe } = hookedSimulator(gate)
      yield* Effect.scoped(Effect.gen(function*() {
        const linear = yield* Linear.make()
        const s = { batch: 3, inDim: 4, outDim: 5 }
        const w = ints(20, 1)
        yield* linear.prepare(w, s)
        const xs = Array.from({ length: 6 }, (_, i) => ints(12, i + 2))
        const ys = yield* Effect.all(xs.map((x) => linear.linear(x, w, s)), { concurrency: "unbounded" })
        ys.forEach((y, i) => expect(Array.from(y)).toEqual(Array.from(reference(xs[i]!, w, s).y)))
        expect(probe.maxInEval).toBe(1)
        // Different kernels do not wait for each other.
        const w2 = ints(20, 3)
        yield* linear.prepare(w2, s)
        probe.maxInEval = 0
        yield* Effect.all([linear.linear(xs[0]!, w, s), linear.linear(xs[1]!, w2, s)], { concurrency: "unbounded" })
        expect(probe.maxInEval).toBe(2)
      })).pipe(Effect.provide(layer))
    }))

  it.effect("interrupting a call during its compile unloads what the compile made and caches nothing", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { layer, probe } = hookedSimulator(gate)
      yield* Effect.scoped(Effect.gen(function*() {
        const ane = yield* Ane.Ane
        const linear = yield* Linear.make()
        const s = { batch: 2, inDim: 3, outDim: 2 }
        const live0 = yield* ane.liveHandles
        const fiber = yield* Effect.fork(linear.linear(ints(6, 2), ints(6, 1), s))
        yield* waitUntil(() => probe.started === 1)
        yield* Fiber.interrupt(fiber)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* ane.liveHandles).toBe(live0)
        expect(yield* linear.stats).toEqual({ compiles: 0, cacheHits: 0, kernels: 0 })
        const { stats } = yield* linear.linearWithStats(ints(6, 2), ints(6, 1), s)
        expect(stats.compiled).toBe(true)
      })).pipe(Effect.provide(layer))
    }))

  it.effect("a compile that finishes after the executor closed is unloaded and its call fails with ClosedError", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { layer, probe } = hookedSimulator(gate)
      yield* Effect.scoped(Effect.gen(function*() {
        const ane = yield* Ane.Ane
        const live0 = yield* ane.liveHandles
        const scope = yield* Scope.make()
        const linear = yield* Scope.extend(Linear.make(), scope)
        const fiber = yield* Effect.fork(linear.prepare(ints(6, 1), { batch: 2, inDim: 3, outDim: 2 }))
        yield* waitUntil(() => probe.started === 1)
        yield* Scope.close(scope, Exit.void)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Effect.flip(Fiber.join(fiber))).toMatchObject({ _tag: "ClosedError", op: "Linear.prepare" })
        expect(yield* ane.liveHandles).toBe(live0)
        expect(yield* linear.stats).toEqual({ compiles: 0, cacheHits: 0, kernels: 0 })
      })).pipe(Effect.provide(layer))
    }))

  it.scoped("stats keep counting after close while kernels drop to zero; calls then fail with ClosedError", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const live0 = yield* ane.liveHandles
      const scope = yield* Scope.make()
      const linear = yield* Scope.extend(Linear.make(), scope)
      const s = { batch: 1, inDim: 2, outDim: 2 }
      const w = new Float32Array([1, 0, 0, 1])
      yield* linear.prepare(w, s)
      yield* linear.linear(new Float32Array([3, 4]), w, s)
      expect(yield* ane.liveHandles).toBeGreaterThan(live0)
      yield* Scope.close(scope, Exit.void)
      expect(yield* ane.liveHandles).toBe(live0)
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 1, kernels: 0 })
      const calls: ReadonlyArray<Effect.Effect<unknown, Linear.LinearError>> = [
        linear.linear(new Float32Array([3, 4]), w, s),
        linear.linearWithStats(new Float32Array([3, 4]), w, s),
        linear.linearInto(new Float32Array(2), new Float32Array([3, 4]), w, s),
        linear.prepare(w, s)
      ]
      for (const call of calls) {
        expect(yield* Effect.flip(call)).toMatchObject({ _tag: "ClosedError", resource: "linear executor" })
      }
    }).pipe(Effect.provide(sim())))

  it.scoped("is available as a layer under the Linear tag, with qos 0 meaning the default class", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.Linear
      const y = yield* linear.linear(new Float32Array([1, 2]), new Float32Array([1, 1, 2, -1]), { batch: 1, inDim: 2, outDim: 2 })
      expect(Array.from(y)).toEqual([3, 0])
    }).pipe(Effect.provide(Linear.layer({ qos: 0 }).pipe(Layer.provideMerge(sim())))))
})

describe("Linear failures", () => {
  const s = { batch: 2, inDim: 3, outDim: 4 }
  const x = ints(6, 1)
  const w = ints(12, 2)
  const dst = new Float32Array(8)
  const cases: ReadonlyArray<[string, (l: Linear.LinearExecutor) => Effect.Effect<unknown, Linear.LinearError>, object]> = [
    ["batch 0", (l) => l.linear(x, w, { ...s, batch: 0 }), { argument: "sizes.batch", expected: "a positive integer", actual: "0" }],
    ["negative inDim", (l) => l.linear(x, w, { ...s, inDim: -3 }), { argument: "sizes.inDim", actual: "-3" }],
    ["fractional outDim", (l) => l.linear(x, w, { ...s, outDim: 1.5 }), { argument: "sizes.outDim", actual: "1.5" }],
    ["NaN batch", (l) => l.linear(x, w, { ...s, batch: NaN }), { argument: "sizes.batch", actual: "NaN" }],
    ["short x", (l) => l.linear(x.subarray(1), w, s), { argument: "x", expected: "length 6 (batch 2 × inDim 3)", actual: "length 5" }],
    ["long w", (l) => l.linearWithStats(x, ints(13, 1), s), { argument: "w", expected: "length 12 (outDim 4 × inDim 3)", actual: "length 13" }],
    ["short dst", (l) => l.linearInto(dst.subarray(1), x, w, s), { argument: "dst", expected: "length 8 (batch 2 × outDim 4)", actual: "length 7" }],
    ["x of the wrong type", (l) => l.linear(Array.from(x) as unknown as Float32Array, w, s), { argument: "x", actual: "Array(6)" }],
    ["prepare with short w", (l) => l.prepare(w.subarray(2), s), { op: "Linear.prepare", argument: "w", actual: "length 10" }],
    ["inDim above the generator's limit", (l) => l.linear(new Float32Array(16385), new Float32Array(16385), { batch: 1, inDim: 16385, outDim: 1 }),
      { op: "Generators.linear", argument: "inDim", actual: "16385" }],
    ["a non-finite weight", (l) => l.linear(x, Float32Array.from(w, (v, i) => (i === 5 ? NaN : v)), s), { argument: "weights[5]", actual: "NaN" }]
  ]
  for (const [name, call, fields] of cases) {
    it.scoped(`rejects ${name} with InvalidArgumentError before compiling`, () =>
      Effect.gen(function*() {
        const ane = yield* Ane.Ane
        const linear = yield* Linear.make()
        const error = yield* Effect.flip(call(linear))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", ...fields })
        expect(yield* ane.compileCount).toBe(0)
        expect(yield* linear.stats).toEqual({ compiles: 0, cacheHits: 0, kernels: 0 })
      }).pipe(Effect.provide(sim())))
  }

  it.scoped("fails with InvalidArgumentError naming qos when the executor's qos is out of range", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.make({ qos: 99 })
      expect(yield* Effect.flip(linear.linear(x, w, s))).toMatchObject({ _tag: "InvalidArgumentError", argument: "qos", actual: "99" })
      expect(yield* linear.stats).toEqual({ compiles: 0, cacheHits: 0, kernels: 0 })
    }).pipe(Effect.provide(sim())))

  it.scoped("keeps a compile failure typed, caches nothing, and compiles on the next call", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.make()
      const live0 = yield* ane.liveHandles
      expect(yield* Effect.flip(linear.linear(x, w, s))).toMatchObject({ _tag: "CompileError", code: 42 })
      expect(yield* ane.liveHandles).toBe(live0)
      expect(yield* linear.stats).toEqual({ compiles: 0, cacheHits: 0, kernels: 0 })
      const ok = yield* linear.linearWithStats(x, w, s)
      expect(ok.stats.compiled).toBe(true)
      expect(Array.from(ok.y)).toEqual(Array.from(reference(x, w, s).y))
    }).pipe(Effect.provide(sim({ faults: [{ stage: "compile", nth: 1, code: 42 }] }))))

  it.scoped("keeps an eval failure typed and leaves the kernel usable", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.make()
      const out = new Float32Array(8).fill(7)
      expect(yield* Effect.flip(linear.linearInto(out, x, w, s))).toMatchObject({ _tag: "EvalError", code: 29 })
      expect(Array.from(out)).toEqual(new Array(8).fill(7))
      const stats = yield* linear.linearInto(out, x, w, s)
      expect(stats.compiled).toBe(false)
      expect(Array.from(out)).toEqual(Array.from(reference(x, w, s).y))
    }).pipe(Effect.provide(sim({ faults: [{ stage: "eval", nth: 1, code: 29 }] }))))

  it.scoped("fails with CompileBudgetExhaustedError once the budget is spent, while cached kernels keep working", () =>
    Effect.gen(function*() {
      const linear = yield* Linear.make()
      yield* linear.prepare(w, s)
      expect(yield* Effect.flip(linear.prepare(ints(12, 5), s))).toMatchObject({ _tag: "CompileBudgetExhaustedError", used: 1, limit: 1 })
      expect(Array.from(yield* linear.linear(x, w, s))).toEqual(Array.from(reference(x, w, s).y))
      expect(yield* linear.stats).toEqual({ compiles: 1, cacheHits: 1, kernels: 1 })
    }).pipe(Effect.provide(sim({ compileBudget: 1 }))))
})

describe("Linear.bind", () => {
  it.scoped("evaluates one cached kernel without re-hashing its weights", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const linear = yield* Linear.make()
      const s = { batch: 3, inDim: 5, outDim: 4 }
      const w = ints(20, 1)
      const layer = yield* linear.bind(w, s)
      expect(layer.sizes).toEqual(s)
      const x = ints(15, 2)
      const direct = yield* linear.linear(x, w, s)
      const before = yield* linear.stats
      // Changing w afterwards reaches neither the kernel nor the cache counters: the bound layer does not look it up.
      w.fill(9)
      const y = yield* layer.linear(x)
      const dst = new Float32Array(12)
      const stats = yield* layer.linearInto(dst, x)
      expect(Array.from(y)).toEqual(Array.from(direct))
      expect(Array.from(dst)).toEqual(Array.from(direct))
      expect(stats.compiled).toBe(false)
      expect(yield* linear.stats).toEqual(before)
      expect(yield* ane.compileCount).toBe(1)
      expect(yield* Effect.flip(layer.linear(ints(14, 2)))).toMatchObject({ _tag: "InvalidArgumentError", argument: "x" })
      expect(yield* Effect.flip(layer.linearInto(new Float32Array(11), x))).toMatchObject({ argument: "dst" })
    }).pipe(Effect.provide(sim())))

  it.scoped("fails with ClosedError once the executor's scope has closed", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const linear = yield* Linear.make().pipe(Scope.extend(scope))
      const layer = yield* linear.bind(ints(6, 1), { batch: 2, inDim: 3, outDim: 2 })
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(layer.linear(ints(6, 2)))).toMatchObject({ _tag: "ClosedError", op: "BoundLinear.linear" })
      expect(yield* Effect.flip(linear.bind(ints(6, 1), { batch: 2, inDim: 3, outDim: 2 }))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(Effect.provide(sim())))
})
