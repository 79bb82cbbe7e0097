/**
 * `Ane.layerWith(options)` hands the hardware backend its options: the eval thread count reaches the pool, so as
 * many asynchronous evaluations are inside the engine at once as `evalThreads` allows, and no more. Over the fake
 * runtime.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { doubleText } from "../services/programs.js"
import { type AttributeTensor, checkAfterEach, loadFake } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const tensor = (name: string): AttributeTensor => ({
  Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name
})

const layerOver = (evalThreads: number) =>
  Ane.layerWith({
    paths: fake.paths, loadRetryMs: 1, evalThreads,
    onSend: (selector, signature, receiver) => fake.checkSignature(receiver, selector, signature)
  })

/** Every handle released through the client, and the fake rejected nothing. */
const expectClean = Effect.gen(function*() {
  expect(yield* (yield* Ane.Ane).liveHandles).toBe(0)
  expect(fake.rejected()).toBe(0)
  expect(fake.mismatches()).toBe(0)
})

/** Polls until `ready()` (at most ~5 s), then checks it. */
const until = (ready: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !ready(); i++) yield* Effect.sleep("5 millis")
    expect(ready(), what).toBe(true)
  })

/**
 * Starts three held asynchronous evaluations on three requests, waits until `expected` are inside the engine (and a
 * little longer, for any thread more the pool has), lets them go, and returns how many were in flight.
 */
const threeHeldEvals = (expected: number) => Effect.gen(function*() {
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      // The fake copies input to output without calling back into JS, so held evaluations never wait for this thread.
      fake.setEval(undefined)
      fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
      fake.reset()
    }),
    () => Effect.sync(() => fake.setAttributes(undefined))
  )
  const ane = yield* Ane.Ane
  const model = yield* ane.compile(CompileOptions.mil({ text: doubleText(4, 32) }))
  const pool = yield* RequestPool.make(model, 3)
  const requests = [yield* pool.acquire, yield* pool.acquire, yield* pool.acquire]
  yield* Effect.addFinalizer(() => Effect.sync(() => fake.holdEvals(false)))
  fake.holdEvals(true)
  const fibers = yield* Effect.forEach(requests, (r) => Effect.fork(r.evalAsync))
  yield* until(() => fake.inFlight() >= expected, `${expected} evaluation(s) in flight`)
  yield* Effect.sleep("50 millis")
  const inFlight = fake.inFlight()
  fake.holdEvals(false)
  yield* Fiber.joinAll(fibers)
  return { inFlight, max: fake.inFlightMax() }
})

describe("Ane.layerWith", () => {
  it.scopedLive("evalThreads: 3 lets three evaluations into the engine at once", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const { inFlight, max } = yield* threeHeldEvals(3)
        expect(inFlight).toBe(3)
        expect(max).toBe(3)
      }))
      yield* expectClean
    }).pipe(Effect.provide(layerOver(3))))

  it.scopedLive("evalThreads: 1 runs them one at a time (the others queue)", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const { inFlight, max } = yield* threeHeldEvals(1)
        expect(inFlight).toBe(1)
        expect(max).toBe(1)
      }))
      yield* expectClean
    }).pipe(Effect.provide(layerOver(1))))

  it.effect("without paths it probes the platform first, as Ane.layer does", () =>
    Effect.gen(function*() {
      const built = (l: Layer.Layer<Ane.Ane, unknown>) =>
        Effect.scoped(Layer.build(l)).pipe(Effect.map(() => "built"), Effect.catchAll((e) => Effect.succeed((e as { _tag: string })._tag)))
      const plain = yield* built(Ane.layer)
      expect(yield* built(Ane.layerWith({ evalThreads: 2 }))).toBe(plain)
      // Off macOS (this test's usual host) both answer NoAneError.
      if (process.platform !== "darwin") expect(plain).toBe("NoAneError")
    }))
})
