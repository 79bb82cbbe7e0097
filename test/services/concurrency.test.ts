/** One request used from several fibers: run/use hold it for a whole sequence, single calls serialise, interruption frees it. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import { type BackendRequest, stubModel } from "../../src/services/Backend.js"
import * as Chain from "../../src/services/Chain.js"
import { ModelTypeId } from "../../src/services/internal/model.js"
import type { Model } from "../../src/services/Model.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { f32Layout, makeFake } from "./fakeBackend.js"
import { double, pattern } from "./programs.js"

const C = 8
const W = 64
const N = C * W
const FIBERS = 8
const ROUNDS = 25

const program = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })

/** A fake whose one fp32 [1, 2, 1, 4] input is copied to its output when an evaluation ends. */
const withFake = (asyncDelayMs = 20) => {
  const fake = makeFake({ inputs: [f32Layout], asyncDelayMs })
  return { fake, layer: Ane.layerBackend().pipe(Layer.provide(fake.layer)) }
}
const compileFake = Effect.flatMap(Ane.Ane, (ane) => ane.compile(program))
const lockOf = (model: Model) => model[ModelTypeId].lock
const filled = (v: number) => new Float32Array(8).fill(v)
/** Fails the test instead of hanging it when a call deadlocks. */
const noDeadlock = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(self, { duration: "5 seconds", onTimeout: () => new Error("deadlock: timed out") })

/** Each fiber evaluates its own inputs `ROUNDS` times through `step` and counts results that are not its own. */
const wrongResults = (step: (x: Float32Array) => Effect.Effect<Float32Array, unknown>) =>
  Effect.map(
    Effect.forEach(Array.from({ length: FIBERS }, (_, f) => f), (f) =>
      Effect.gen(function*() {
        let wrong = 0
        for (let r = 0; r < ROUNDS; r++) {
          const x = pattern(N, f * ROUNDS + r)
          const y = yield* step(x)
          if (y.some((v, i) => v !== 2 * x[i]!)) wrong++
        }
        return wrong
      }), { concurrency: "unbounded" }),
    (counts) => counts.reduce((a, b) => a + b, 0)
  )

describe("a Model shared by fibers, on the simulator", () => {
  const simulator = Ane.layerSimulator({ latency: { fixedUs: 100 } })

  it.scopedLive("gives every fiber its own result through model.run (8 fibers)", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(double(C, W))
      const wrong = yield* wrongResults((x) => Effect.map(model.run([x]), (ys) => ys[0]!))
      expect(wrong).toBe(0)
    }).pipe(Effect.provide(simulator)))

  it.scopedLive("gives every fiber its own result through model.use with separate calls (8 fibers)", () =>
    Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(double(C, W))
      const wrong = yield* wrongResults((x) =>
        model.use((m) =>
          Effect.gen(function*() {
            yield* m.writeInputF32(0, x)
            yield* m.evalAsync
            return yield* m.readOutputF32(0)
          })))
      expect(wrong).toBe(0)
    }).pipe(Effect.provide(simulator)))

  it.scopedLive("runs synchronously when asked, and pooled and bound requests have run and use too", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(double(C, W))
      const x = pattern(N, 5)
      const [y] = yield* model.run([x], { mode: "sync" })
      expect(Array.from(y!.subarray(0, 4))).toEqual(Array.from(x.subarray(0, 4), (v) => 2 * v))
      const pool = yield* RequestPool.make(model, 2)
      const r = yield* pool.acquire
      expect((yield* r.run([x]))[0]![7]).toBe(2 * x[7]!)
      expect(yield* r.use((self) => Effect.zipRight(self.writeInputF32(0, x), Effect.as(self.eval, self.index)))).toBe(r.index)
      const bytes = model.inputs[0]!.allocSize
      const bound = yield* model.bindRequest({
        inputs: [yield* ane.createSurface(bytes)],
        outputs: [yield* ane.createSurface(model.outputs[0]!.allocSize)]
      })
      expect((yield* bound.run([x]))[0]![N - 1]).toBe(2 * x[N - 1]!)
      const wrong = yield* wrongResults((x) => Effect.map(bound.run([x]), (ys) => ys[0]!))
      expect(wrong).toBe(0)
    }).pipe(Effect.provide(simulator)))
})

describe("single calls on one request", () => {
  it.scopedLive("never overlap: four concurrent evalAsync run one at a time", () => {
    const { fake, layer } = withFake(5)
    return Effect.gen(function*() {
      const model = yield* compileFake
      yield* Effect.all([model.evalAsync, model.evalAsync, model.evalAsync, model.evalAsync], { concurrency: "unbounded" })
      expect(fake.stats.evals).toBe(4)
      expect(fake.stats.maxAsyncInFlight).toBe(1)
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("a write from another fiber waits for an evaluation in progress", () => {
    const { layer } = withFake(30)
    return Effect.gen(function*() {
      const model = yield* compileFake
      yield* model.writeInputF32(0, filled(1))
      const evaluating = yield* Effect.fork(model.evalAsync)
      yield* Effect.sleep(5)
      expect(lockOf(model).holder).toBeDefined()
      const writing = yield* Effect.fork(model.writeInputF32(0, filled(2)))
      yield* Fiber.join(evaluating)
      yield* Fiber.join(writing)
      // The evaluation copied the input it started with; the second write landed after it.
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(filled(1)))
      yield* model.eval
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(filled(2)))
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("another fiber's calls wait until use ends, then go in arrival order", () => {
    const { layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const inside = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const order: Array<string> = []
      const holder = yield* Effect.fork(model.use((m) =>
        Effect.gen(function*() {
          yield* m.writeInputF32(0, filled(7))
          yield* Deferred.succeed(inside, undefined)
          yield* Deferred.await(finish)
          yield* m.evalAsync
          order.push("use")
          return yield* m.readOutputF32(0)
        })))
      yield* Deferred.await(inside)
      const others = yield* Effect.forEach([1, 2, 3], (k) =>
        Effect.fork(Effect.zipRight(model.writeInputF32(0, filled(k)), Effect.sync(() => order.push(`write ${k}`)))))
      yield* Effect.sleep(10)
      expect(order).toEqual([])
      expect(lockOf(model).waiting).toBe(3)
      yield* Deferred.succeed(finish, undefined)
      expect(Array.from(yield* Fiber.join(holder))).toEqual(Array.from(filled(7)))
      yield* Fiber.joinAll(others)
      expect(order).toEqual(["use", "write 1", "write 2", "write 3"])
    }).pipe(Effect.provide(layer))
  })
})

describe("use is re-entrant", () => {
  it.scopedLive("calls inside f on the same model, nested use and run, and fibers f forks do not wait for themselves", () => {
    const { fake, layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const result = yield* noDeadlock(model.use((m) =>
        Effect.gen(function*() {
          yield* m.writeInputF32(0, filled(3))
          yield* m.eval
          yield* model.evalAsync
          const nested = yield* model.use((again) => again.readOutputF32(0))
          const [viaRun] = yield* model.run([filled(4)])
          const forked = yield* Effect.all([model.readOutputF32(0), model.readOutputF32(0)], { concurrency: "unbounded" })
          return { nested, viaRun: viaRun!, forked }
        })))
      expect(result.nested[0]).toBe(3)
      expect(result.viaRun[0]).toBe(4)
      expect(result.forked.map((y) => y[0])).toEqual([4, 4])
      expect(fake.stats.evals).toBe(3)
      expect(lockOf(model).holder).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("a fiber forked inside use that outlives it waits like any other", () => {
    const { layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const go = yield* Deferred.make<void>()
      const escaped = yield* model.use(() =>
        Effect.forkDaemon(Effect.zipRight(Deferred.await(go), model.writeInputF32(0, filled(9)))))
      const inside = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const later = yield* Effect.fork(model.use((m) =>
        Effect.gen(function*() {
          yield* m.writeInputF32(0, filled(5))
          yield* Deferred.succeed(inside, undefined)
          yield* Deferred.await(finish)
          yield* m.eval
          return yield* m.readOutputF32(0)
        })))
      yield* Deferred.await(inside)
      yield* Deferred.succeed(go, undefined)
      yield* Effect.sleep(10)
      expect(lockOf(model).waiting).toBe(1)
      yield* Deferred.succeed(finish, undefined)
      expect((yield* Fiber.join(later))[0]).toBe(5)
      yield* noDeadlock(Fiber.join(escaped))
      yield* model.eval
      expect((yield* model.readOutputF32(0))[0]).toBe(9)
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("Chain copies inside use of its source, and between two models in either order at once", () => {
    const { layer } = withFake(1)
    return Effect.gen(function*() {
      const a = yield* compileFake
      const b = yield* compileFake
      const range = { srcOutput: 0, srcChannel: 0, dstInput: 0, dstChannel: 0, channels: 2 }
      yield* a.run([filled(6)])
      yield* noDeadlock(a.use(() => Chain.copyOutputToInput(a, b, range)))
      yield* b.eval
      expect((yield* b.readOutputF32(0))[0]).toBe(6)
      yield* noDeadlock(Effect.all(
        Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? Chain.copyOutputToInput(a, b, range) : Chain.copyOutputToInput(b, a, range)),
        { concurrency: "unbounded" }
      ))
      expect(lockOf(a).holder).toBeUndefined()
      expect(lockOf(b).holder).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })
})

describe("interruption and the lock", () => {
  it.scopedLive("interrupting the holder of use releases the request", () => {
    const { layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const inside = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(model.use(() => Effect.zipRight(Deferred.succeed(inside, undefined), Effect.never)))
      yield* Deferred.await(inside)
      const waiter = yield* Effect.fork(model.run([filled(2)]))
      yield* Effect.sleep(5)
      expect(lockOf(model).waiting).toBe(1)
      yield* Fiber.interrupt(holder)
      expect((yield* noDeadlock(Fiber.join(waiter)))[0]![0]).toBe(2)
      expect(lockOf(model).holder).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("interrupting an evaluation in progress releases the request", () => {
    const { layer } = withFake(50)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const evaluating = yield* Effect.fork(model.evalAsync)
      yield* Effect.sleep(5)
      expect(lockOf(model).holder).toBeDefined()
      const waiter = yield* Effect.fork(model.writeInputF32(0, filled(1)))
      yield* Fiber.interrupt(evaluating)
      yield* noDeadlock(Fiber.join(waiter))
      yield* noDeadlock(model.writeInputF32(0, filled(2)))
      expect(lockOf(model).holder).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("a waiter interrupted in line is skipped: the request goes to the next one, or is free", () => {
    const { fake, layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const inside = yield* Deferred.make<void>()
      const finish = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(model.use(() =>
        Effect.zipRight(Deferred.succeed(inside, undefined), Deferred.await(finish))))
      yield* Deferred.await(inside)
      const first = yield* Effect.fork(model.eval)
      const second = yield* Effect.fork(model.use((m) => m.eval))
      const third = yield* Effect.fork(model.evalAsync)
      yield* Effect.sleep(5)
      expect(lockOf(model).waiting).toBe(3)
      yield* Fiber.interrupt(first)
      yield* Fiber.interrupt(second)
      expect(lockOf(model).waiting).toBe(1)
      yield* Deferred.succeed(finish, undefined)
      yield* Fiber.join(holder)
      yield* noDeadlock(Fiber.join(third))
      expect(fake.stats.evals).toBe(1)
      expect(lockOf(model).holder).toBeUndefined()
      yield* noDeadlock(model.eval)
    }).pipe(Effect.provide(layer))
  })

  it.scopedLive("random interruptions of 8 fibers sharing a model never leave it locked", () => {
    const { layer } = withFake(1)
    return Effect.gen(function*() {
      const model = yield* compileFake
      for (let round = 0; round < 10; round++) {
        const fibers = yield* Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (i) =>
          Effect.fork(Effect.forever(
            i % 3 === 0
              ? model.run([filled(i)])
              : i % 3 === 1
              ? model.evalAsync
              : model.use((m) => Effect.zipRight(m.evalAsync, m.readOutputF32(0)))
          )))
        yield* Effect.sleep(2 + round)
        yield* Fiber.interruptAll(fibers)
        expect(lockOf(model).waiting).toBe(0)
        yield* noDeadlock(model.eval)
        expect(lockOf(model).holder).toBeUndefined()
      }
    }).pipe(Effect.provide(layer))
  })
})

describe("run rejects bad input before touching the request", () => {
  it.scoped("wrong count, wrong length or type, bad mode; ClosedError after the scope", () => {
    const { fake, layer } = withFake(0)
    return Effect.gen(function*() {
      const model = yield* compileFake
      const count = yield* Effect.flip(model.run([]))
      expect(count).toMatchObject({ _tag: "InvalidArgumentError", op: "Model.run", argument: "inputs", actual: "Array(0)" })
      const short = yield* Effect.flip(model.run([new Float32Array(3)]))
      expect(short).toMatchObject({ _tag: "InvalidArgumentError", argument: "inputs[0]", actual: "length 3" })
      const typed = yield* Effect.flip(model.run([new Uint16Array(8) as unknown as Float32Array]))
      expect(typed).toMatchObject({ _tag: "InvalidArgumentError", argument: "inputs[0]", actual: "Uint16Array(8)" })
      const notArray = yield* Effect.flip(model.run(filled(1) as unknown as ReadonlyArray<Float32Array>))
      expect(notArray).toMatchObject({ argument: "inputs", actual: "Float32Array(8)" })
      const mode = yield* Effect.flip(model.run([filled(1)], { mode: "fast" as "sync" }))
      expect(mode).toMatchObject({ argument: "options.mode", actual: "\"fast\"" })
      expect(fake.stats.evals).toBe(0)
      expect(lockOf(model).holder).toBeUndefined()
    }).pipe(Effect.provide(layer))
  })

  it.effect("a closed model answers ClosedError from run and from calls inside use", () => {
    const { layer } = withFake(0)
    return Effect.gen(function*() {
      const model = yield* Effect.scoped(compileFake)
      expect(yield* Effect.flip(model.run([filled(1)]))).toMatchObject({ _tag: "ClosedError", op: "Model.run" })
      const inside = yield* Effect.flip(model.use((m) => m.eval))
      expect(inside).toMatchObject({ _tag: "ClosedError", op: "Model.eval" })
    }).pipe(Effect.provide(layer))
  })

  it.scoped("run copies under the backend's surface lock when it has one", () => {
    const log: Array<string> = []
    const layer = Ane.layerNoop({
      compile: (o) =>
        Effect.sync(() => {
          const m = stubModel(o)
          const access: BackendRequest["access"] = (side, index, mode, f) => {
            log.push(`${side} ${index} ${mode}`)
            return f((side === "input" ? m.request.inputs : m.request.outputs)[index]!)
          }
          return { ...m, request: { ...m.request, access } }
        })
    })
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(program)
      const [y] = yield* model.run([new Float32Array(32)], { mode: "sync" })
      expect(y!.length).toBe(32)
      expect(log).toEqual(["input 0 write", "output 0 read"])
    }).pipe(Effect.provide(layer))
  })
})
