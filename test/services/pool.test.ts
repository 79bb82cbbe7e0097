/** RequestPool and RequestPool.evalStream: exclusivity, waiting, ordering, depth bound, back-pressure, interruption. */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"
import * as Ane from "../../src/services/Ane.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { makeFake } from "./fakeBackend.js"

const program = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })
const layout = TensorLayout.packed({ channels: 2, height: 1, width: 8, elemSize: 2 })
const n = layout.logicalElements

const setup = (options: Parameters<typeof makeFake>[0] = {}) => {
  const fake = makeFake({ inputs: [layout], outputs: [layout], ...options })
  const layer = Ane.layerBackend().pipe(Layer.provide(fake.layer))
  const compile = Effect.flatMap(Ane.Ane, (ane) => ane.compile(program))
  return { fake, layer, compile }
}

const element = (i: number) => [Float32Array.from({ length: n }, (_, k) => i * 4 + (k % 4))]

describe("RequestPool", () => {
  it.live("hands out each request to one holder and makes the next caller wait", () => {
    const { fake, layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      const pool = yield* RequestPool.make(model, 2)
      expect(pool.size).toBe(2)
      expect(fake.stats.live).toBe(4)
      const s1 = yield* Scope.make()
      const a = yield* Scope.extend(pool.acquire, s1)
      const b = yield* pool.acquire
      expect(a.index).not.toBe(b.index)
      expect(yield* pool.available).toBe(0)
      const waiter = yield* Effect.fork(Effect.scoped(Effect.map(pool.acquire, (r) => r.index)))
      yield* Effect.sleep("20 millis")
      expect(waiter.unsafePoll()).toBeNull()
      yield* Scope.close(s1, Exit.void)
      expect(yield* Fiber.join(waiter)).toBe(a.index)
      // Each request has its own surfaces.
      yield* a.writeInputF32(0, element(1)[0]!)
      yield* b.writeInputF32(0, element(2)[0]!)
      yield* a.eval
      yield* b.evalAsync
      expect((yield* a.readOutputF32(0))[0]).toBe(4)
      expect((yield* b.readOutputF32(0))[0]).toBe(8)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a caller waiting in acquire gets ClosedError when the pool closes", () => {
    const { layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      const poolScope = yield* Scope.make()
      const pool = yield* Scope.extend(RequestPool.make(model, 1), poolScope)
      yield* pool.acquire
      const waiter = yield* Effect.fork(Effect.scoped(pool.acquire))
      yield* Effect.sleep("10 millis")
      yield* Scope.close(poolScope, Exit.void)
      const exit = yield* Fiber.await(waiter)
      expect(exit).toMatchObject({ _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "ClosedError", op: "RequestPool.acquire" } } })
      expect(yield* pool.available).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a waiting acquire can be interrupted without losing a request", () => {
    const { layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      const pool = yield* RequestPool.make(model, 1)
      const held = yield* Scope.make()
      yield* Scope.extend(pool.acquire, held)
      const waiter = yield* Effect.fork(Effect.scoped(pool.acquire))
      yield* Effect.sleep("5 millis")
      yield* Fiber.interrupt(waiter)
      yield* Scope.close(held, Exit.void)
      expect(yield* pool.available).toBe(1)
      const again = yield* Effect.scoped(Effect.map(pool.acquire, (r) => r.index))
      expect(again).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.effect("rejects sizes outside 1..127", () => {
    const { layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      for (const size of [0, 128, 1.5, -3]) {
        const error = yield* Effect.flip(RequestPool.make(model, size))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", op: "RequestPool.make", argument: "size", actual: String(size) })
      }
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.effect("answers ClosedError once its scope or its model's scope closed", () => {
    const { fake, layer, compile } = setup()
    return Effect.gen(function*() {
      const modelScope = yield* Scope.make()
      const model = yield* Scope.extend(compile, modelScope)
      const pool = yield* RequestPool.make(model, 2)
      const r = yield* pool.acquire
      yield* Scope.close(modelScope, Exit.void)
      expect(yield* Effect.flip(r.eval)).toMatchObject({ _tag: "ClosedError", op: "PooledRequest.eval" })
      expect(yield* Effect.flip(r.readOutputF32(0))).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(RequestPool.make(model, 1))).toMatchObject({ _tag: "ClosedError" })
      expect(fake.stats.live).toBeGreaterThan(0) // the pool's own requests live until its scope closes
    }).pipe(Effect.scoped, Effect.provide(layer))
  })
})

describe("RequestPool.evalStream", () => {
  const collect = (depth: number, count: number, options: Parameters<typeof makeFake>[0] = {}, chunk = 3) => {
    const { fake, layer, compile } = setup(options)
    return Effect.gen(function*() {
      const model = yield* compile
      const out = yield* Stream.range(0, count - 1).pipe(
        Stream.rechunk(chunk),
        Stream.map(element),
        RequestPool.evalStream(model, { depth }),
        Stream.runCollect
      )
      return { out: Chunk.toReadonlyArray(out), stats: fake.stats }
    }).pipe(Effect.scoped, Effect.provide(layer))
  }

  it.live("keeps order and never exceeds depth in flight", () =>
    Effect.gen(function*() {
      const { out, stats } = yield* collect(4, 40, { asyncDelayMs: 1 })
      expect(out.length).toBe(40)
      out.forEach((o, i) => expect(Array.from(o[0]!)).toEqual(Array.from(element(i)[0]!)))
      expect(stats.maxAsyncInFlight).toBe(4)
      expect(stats.live).toBe(0)
    }))

  it.live("keeps order and the depth bound when whole windows of a large chunk run at once", () =>
    Effect.gen(function*() {
      const { out, stats } = yield* collect(4, 150, { asyncDelayMs: 1 }, 100)
      expect(out.length).toBe(150)
      out.forEach((o, i) => expect(Array.from(o[0]!)).toEqual(Array.from(element(i)[0]!)))
      expect(stats.maxAsyncInFlight).toBe(4)
      expect(stats.live).toBe(0)
    }))

  it.live("a slow consumer holds the lanes of a large chunk near what it has pulled", () => {
    const { fake, layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      const pull = yield* Stream.range(0, 999).pipe(
        Stream.map(element),
        RequestPool.evalStream(model, { depth: 4 }),
        Stream.toPull
      )
      const first = Chunk.toReadonlyArray(yield* pull)
      expect(first.length).toBeGreaterThan(0)
      first.forEach((o, i) => expect(Array.from(o[0]!)).toEqual(Array.from(element(i)[0]!)))
      yield* Effect.sleep("30 millis")
      // Without a bound the lanes would have evaluated the whole 1000-element chunk by now.
      expect(fake.stats.evals).toBeLessThan(100)
      const second = Chunk.toReadonlyArray(yield* pull)
      second.forEach((o, i) => expect(Array.from(o[0]!)).toEqual(Array.from(element(first.length + i)[0]!)))
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("interruption in the middle of a window releases its requests", () => {
    const { fake, layer, compile } = setup({ asyncDelayMs: 200 })
    return Effect.gen(function*() {
      const model = yield* compile
      const fiber = yield* Stream.range(0, 999).pipe(
        Stream.map(element),
        RequestPool.evalStream(model, { depth: 3 }),
        Stream.runDrain,
        Effect.fork
      )
      while (fake.stats.asyncInFlight < 3) yield* Effect.sleep("2 millis")
      yield* Fiber.interrupt(fiber)
      expect(fake.stats.asyncInFlight).toBe(0)
      expect(fake.stats.live).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("depth 1 is strictly sequential", () =>
    Effect.gen(function*() {
      const { out, stats } = yield* collect(1, 10, { asyncDelayMs: 1 })
      expect(out.length).toBe(10)
      expect(stats.maxAsyncInFlight).toBe(1)
    }))

  it.effect("pulls upstream only as capacity frees (back-pressure on an endless source)", () => {
    const { layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      let pulled = 0
      const out = yield* Stream.iterate(0, (i) => i + 1).pipe(
        Stream.tap(() => Effect.sync(() => { pulled++ })),
        Stream.map(element),
        RequestPool.evalStream(model, { depth: 4 }),
        Stream.take(10),
        Stream.runCollect
      )
      expect(out.length).toBe(10)
      // Stream.iterate emits one element per chunk: at most the window plus one prefetched chunk beyond the taken.
      expect(pulled).toBeLessThanOrEqual(10 + 4 + 1)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("interruption releases every in-flight request", () => {
    const { fake, layer, compile } = setup({ asyncDelayMs: 200 })
    return Effect.gen(function*() {
      const model = yield* compile
      const fiber = yield* Stream.iterate(0, (i) => i + 1).pipe(
        Stream.map(element),
        RequestPool.evalStream(model, { depth: 3 }),
        Stream.runDrain,
        Effect.fork
      )
      while (fake.stats.asyncInFlight < 3) yield* Effect.sleep("2 millis")
      expect(fake.stats.live).toBe(2 + 3)
      yield* Fiber.interrupt(fiber)
      expect(fake.stats.asyncInFlight).toBe(0)
      expect(fake.stats.live).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.effect("fails with InvalidArgumentError on a malformed element and releases its requests", () => {
    const { fake, layer, compile } = setup()
    return Effect.gen(function*() {
      const model = yield* compile
      const error = yield* Stream.make(element(0), [new Float32Array(3)], element(2)).pipe(
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runDrain,
        Effect.flip
      )
      expect(error).toMatchObject({ _tag: "InvalidArgumentError", op: "RequestPool.evalStream", argument: "element[0]" })
      const arity = yield* Stream.make([] as ReadonlyArray<Float32Array>).pipe(
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runDrain,
        Effect.flip
      )
      expect(arity).toMatchObject({ argument: "element", actual: "Array(0)" })
      expect(fake.stats.live).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.effect("rejects a bad depth and propagates eval and upstream failures", () => {
    const { layer, compile } = setup({ faults: [{ stage: "eval", nth: 3, code: 5, domain: "d" }] })
    return Effect.gen(function*() {
      const model = yield* compile
      const depth = yield* Stream.make(element(0)).pipe(RequestPool.evalStream(model, { depth: 0 }), Stream.runDrain, Effect.flip)
      expect(depth).toMatchObject({ _tag: "InvalidArgumentError", argument: "depth", actual: "0" })
      const evalError = yield* Stream.range(0, 9).pipe(
        Stream.map(element),
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runDrain,
        Effect.flip
      )
      expect(evalError).toMatchObject({ _tag: "EvalError", code: 5, domain: "d" })
      const upstream = yield* Stream.concat(Stream.make(element(0)), Stream.fail("upstream broke" as const)).pipe(
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runDrain,
        Effect.flip
      )
      expect(upstream).toBe("upstream broke")
    }).pipe(Effect.scoped, Effect.provide(layer))
  })
})
