/**
 * The ANE↔GPU Pipeline on the simulator: 1 000 inputs through ANE → GPU → ANE with the event counter strictly
 * increasing and outputs equal to the three steps run one after another, as calls and as a Stream stage; every
 * handle released after success, failure and interruption at random points.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { float32ToFp16, fp16ToFloat32 } from "../../src/fp16/scalar.js"
import type { SimulatorOptions } from "../../src/sim/SimBackend.js"
import * as Ane from "../../src/services/Ane.js"
import { layerNoop, stubModel } from "../../src/services/Backend.js"
import * as Metal from "../../src/services/Metal.js"
import type { Model } from "../../src/services/Model.js"
import * as Pipeline from "../../src/services/Pipeline.js"
import { double, pattern } from "./programs.js"

const C = 4
const W = 64
const N = 1000

const simLayer = (options: SimulatorOptions = {}) => Ane.layerSimulator({ latency: "off", ...options })

/** y = x + 1 from buffer 0 (the first model's output) into buffer 1 (the next model's input), fp16 throughout. */
const plusOne = (onRun: () => void = () => undefined) =>
  Metal.kernel({
    name: "plus_one",
    msl: "kernel void plus_one() {}",
    simulate: ({ buffers }) => {
      onRun()
      const [a, b] = buffers as [Uint8Array, Uint8Array]
      const src = new Uint16Array(a.buffer, a.byteOffset, a.length >> 1)
      const dst = new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)
      for (let i = 0; i < src.length; i++) dst[i] = float32ToFp16(fp16ToFloat32(src[i]!) + 1)
    }
  })

const inputs = (n: number) => Array.from({ length: n }, (_, i) => [pattern(C * W, i)] as ReadonlyArray<Float32Array>)

/** The three steps one after another on the models' own requests, the kernel run by hand in between. */
const sequential = (first: Model, next: Model, element: ReadonlyArray<Float32Array>) =>
  Effect.gen(function*() {
    yield* first.writeInputF32(0, element[0]!)
    yield* first.eval
    const a = (yield* first.surfaces).outputs[0]!
    const b = (yield* next.surfaces).inputs[0]!
    plusOne().simulate!({ buffers: [a, b], grid: [a.length / 2, 1, 1], params: undefined })
    yield* next.eval
    return yield* next.readOutputF32(0)
  })

/** A small deterministic generator, so a failing seed can be rerun. */
const random = (seed: number) => {
  let s = seed >>> 0
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s % n
  }
}

const setup = Effect.gen(function*() {
  const ane = yield* Ane.Ane
  const device = yield* Metal.open
  const first = yield* ane.compile(double(C, W))
  const next = yield* ane.compile(double(C, W))
  return { ane, device, first, next }
})

describe("Pipeline (calls)", () => {
  it.scoped("runs 1 000 inputs ANE → GPU → ANE with the counter strictly increasing and outputs as if run in turn", () =>
    Effect.gen(function*() {
      const { ane, device, first, next } = yield* setup
      const reference = yield* Effect.forEach(inputs(N), (x) => sequential(first, next, x))
      const before = yield* ane.liveHandles
      yield* Effect.scoped(Effect.gen(function*() {
        const p = yield* Pipeline.make(device)
        expect(yield* p.counter).toBe(0n)
        expect(p.metalEvent.port).toBe(p.aneEvent.port)
        const k = yield* device.compile(plusOne())
        const buffers = [yield* device.outputBuffer(first, 0), yield* device.inputBuffer(next, 0)]
        let last = 0n
        const xs = inputs(N)
        for (let i = 0; i < N; i++) {
          yield* first.writeInputF32(0, xs[i]![0]!)
          const v = yield* p.aneToMetal(first)
          const s = yield* p.dispatch(k, { buffers, grid: buffers[0]!.length / 2 })
          const b = yield* p.bidirectional(next)
          expect(v).toBeGreaterThan(last)
          expect(s).toBe(v + 1n)
          expect(b).toEqual({ wait: s, signal: s + 1n })
          expect(yield* p.aneEvent.signaledValue).toBe(b.signal)
          last = b.signal
          expect(Array.from(yield* next.readOutputF32(0))).toEqual(Array.from(reference[i]!))
        }
        expect(yield* p.counter).toBe(BigInt(3 * N))
        // waitOnAne waits for the value the GPU signalled last, without moving the counter.
        yield* p.dispatch(k, { buffers, grid: 1 })
        expect(yield* p.waitOnAne(next)).toBe(BigInt(3 * N + 1))
        expect(yield* p.counter).toBe(BigInt(3 * N + 1))
      }))
      expect(yield* ane.liveHandles).toBe(before)
    }).pipe(Effect.provide(simLayer())), 60_000)
})

describe("Pipeline.stream", () => {
  for (const depth of [1, 2, 3]) {
    it.scoped(`emits, at depth ${depth}, the outputs of the three steps run in turn, in order, for 1 000 inputs`, () =>
      Effect.gen(function*() {
        const { ane, first, next } = yield* setup
        const xs = inputs(N)
        const reference = yield* Effect.forEach(xs, (x) => sequential(first, next, x))
        const before = yield* ane.liveHandles
        const out = yield* Effect.scoped(Effect.gen(function*() {
          const device = yield* Metal.open
          const kernel = yield* device.compile(plusOne())
          return yield* Stream.fromIterable(xs).pipe(
            Stream.rechunk(7),
            Pipeline.stream(device, { first, kernel, next, grid: (C * first.outputs[0]!.planeStride) / 2, depth }),
            Stream.runCollect
          )
        }))
        expect(out.length).toBe(N)
        let i = 0
        for (const o of out) {
          expect(Array.from(o[0]!)).toEqual(Array.from(reference[i]!))
          i++
        }
        expect(yield* ane.liveHandles).toBe(before)
        // Timed engines, so a step that did not wait for its event would read its input too early.
      }).pipe(Effect.provide(simLayer({ latency: { fixedUs: 20 }, gpu: { dispatchUs: 40 } }))), 60_000)
  }

  it.scoped("overlaps one element's GPU step with the next one's ANE step at depth 2", () =>
    Effect.gen(function*() {
      const { device, first, next } = yield* setup
      const log: Array<string> = []
      let running = 0
      let overlapped = false
      const kernel = yield* device.compile(plusOne(() => {
        log.push("gpu")
        if (running > 0) overlapped = true
      }))
      // The second element's first step starts while the first element's GPU step is still pending.
      const ys = yield* Stream.fromIterable(inputs(8)).pipe(
        Stream.tap(() => Effect.sync(() => { running++ })),
        Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 2 }),
        Stream.tap(() => Effect.sync(() => { running-- })),
        Stream.runCollect
      )
      expect(ys.length).toBe(8)
      expect(log.length).toBe(8)
      expect(overlapped).toBe(true)
    }).pipe(Effect.provide(simLayer({ latency: { fixedUs: 200 }, gpu: { dispatchUs: 200 } }))), 30_000)

  it.scoped("emits the first model's outputs as the kernel left them when there is no next model", () =>
    Effect.gen(function*() {
      const { device, first } = yield* setup
      const kernel = yield* device.compile(Metal.kernel({
        name: "negate",
        simulate: ({ buffers }) => {
          const b = buffers[0]!
          const h = new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)
          for (let i = 0; i < h.length; i++) h[i] = h[i]! ^ 0x8000
        }
      }))
      const out = yield* Stream.make([pattern(C * W, 1)]).pipe(
        Pipeline.stream(device, { first, kernel, grid: 1 }),
        Stream.runCollect
      )
      expect(Array.from([...out][0]![0]!)).toEqual(Array.from(pattern(C * W, 1), (v) => -2 * v))
    }).pipe(Effect.provide(simLayer())))

  it.scoped("checks its options and each element, typed", () =>
    Effect.gen(function*() {
      const { device, first, next } = yield* setup
      const kernel = yield* device.compile(plusOne())
      const other = yield* Metal.open
      const foreign = yield* other.compile(plusOne())
      const run = (o: Partial<Pipeline.StreamOptions>, xs: ReadonlyArray<ReadonlyArray<Float32Array>> = inputs(1)) =>
        Effect.flip(Stream.runDrain(Stream.fromIterable(xs).pipe(
          Pipeline.stream(device, { first, next, kernel, grid: 1, ...o } as Pipeline.StreamOptions)
        )))
      expect(yield* run({ depth: 0 })).toMatchObject({ _tag: "InvalidArgumentError", argument: "depth" })
      expect(yield* run({ depth: 17 })).toMatchObject({ _tag: "InvalidArgumentError", argument: "depth" })
      expect(yield* run({ kernel: foreign })).toMatchObject({ _tag: "InvalidArgumentError", argument: "kernel" })
      expect(yield* run({ first: {} as Model })).toMatchObject({ _tag: "InvalidArgumentError", argument: "first" })
      expect(yield* run({ grid: 0 })).toMatchObject({ _tag: "InvalidArgumentError", argument: "grid" })
      expect(yield* run({}, [[new Float32Array(3)]])).toMatchObject({ _tag: "InvalidArgumentError", argument: "data" })
      expect(yield* run({}, [[]])).toMatchObject({ _tag: "InvalidArgumentError", argument: "element" })
      // Bad options are refused before a request is mapped.
      const before = yield* (yield* Ane.Ane).liveHandles
      expect(yield* run({ grid: [1, 2, 3, 4] as never })).toMatchObject({ argument: "grid" })
      expect(yield* (yield* Ane.Ane).liveHandles).toBe(before)
      // A kernel whose scope has closed is refused, and so is one closed while the stream runs.
      const kernelScope = yield* Scope.make()
      const short = yield* Scope.extend(device.compile(plusOne()), kernelScope)
      yield* Scope.close(kernelScope, Exit.void)
      expect(yield* run({ kernel: short })).toMatchObject({ _tag: "ClosedError", resource: "kernel plus_one" })
      const midScope = yield* Scope.make()
      const mid = yield* Scope.extend(device.compile(plusOne()), midScope)
      const error = yield* Effect.flip(Stream.runDrain(Stream.fromIterable(inputs(20)).pipe(
        // One element per chunk: elements after the first emitted one start after the kernel has closed.
        Stream.rechunk(1),
        Pipeline.stream(device, { first, next, kernel: mid, grid: 1, depth: 1 }),
        Stream.tap(() => Scope.close(midScope, Exit.void))
      )))
      expect(error).toMatchObject({ _tag: "ClosedError", resource: "kernel plus_one" })
    }).pipe(Effect.provide(simLayer())))

  it.scoped("runs on the stub, whose GPU does nothing: the outputs are the first model's", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const device = yield* Metal.open
      const first = yield* ane.compile(double(1, 32))
      const kernel = yield* device.compile(plusOne())
      const out = yield* Stream.runCollect(Stream.make([new Float32Array(32)], [new Float32Array(32)]).pipe(
        Pipeline.stream(device, { first, kernel, grid: 1 })
      ))
      expect([...out].map((o) => o[0]!.length)).toEqual([32, 32])
    }).pipe(Effect.provide(Ane.layerNoop())))

  it.scoped("refuses in-memory models where the backend runs shared events for packages only", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const device = yield* Metal.open
      const first = yield* ane.compile(double(1, 32))
      const kernel = yield* device.compile(plusOne())
      const error = yield* Effect.flip(Stream.runDrain(Stream.make([new Float32Array(32)]).pipe(
        Pipeline.stream(device, { first, kernel, grid: 1 })
      )))
      expect(error).toMatchObject({ _tag: "SharedEventRequiresPackageError", op: "Pipeline.stream", model: first.id })
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(layerNoop({
      compile: (o) => Effect.succeed({ ...stubModel(o), capabilities: { sharedEvents: "package-only", asyncEval: false } })
    })), Layer.orDie))))
})

describe("Pipeline.stream releases everything", () => {
  for (const seed of [1, 2, 3, 4]) {
    it.scoped(`after an engine failure at a random element (seed ${seed})`, () => {
      const at = 1 + random(seed)(2 * 200)
      return Effect.gen(function*() {
        const { ane, first, next } = yield* setup
        const before = yield* ane.liveHandles
        const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
          const device = yield* Metal.open
          const kernel = yield* device.compile(plusOne())
          return yield* Stream.runDrain(Stream.fromIterable(inputs(200)).pipe(
            Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 2 })
          ))
        })))
        expect(exit).toMatchObject({ _tag: "Failure", cause: { error: { _tag: "EvalError" } } })
        expect(yield* ane.liveHandles).toBe(before)
      }).pipe(Effect.provide(simLayer({ faults: [{ stage: "eval", nth: at }] })))
    })

    it.scoped(`after a GPU failure at a random element (seed ${seed})`, () => {
      const at = 1 + random(seed + 100)(200)
      return Effect.gen(function*() {
        const { ane, first, next } = yield* setup
        const before = yield* ane.liveHandles
        let runs = 0
        const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
          const device = yield* Metal.open
          const kernel = yield* device.compile(plusOne(() => {
            if (++runs === at) throw new Error(`element ${at}`)
          }))
          return yield* Stream.runDrain(Stream.fromIterable(inputs(200)).pipe(
            Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 3 })
          ))
        })))
        expect(exit).toMatchObject({ _tag: "Failure", cause: { error: { _tag: "MetalError" } } })
        expect(yield* ane.liveHandles).toBe(before)
      }).pipe(Effect.provide(simLayer()))
    })

    it.scoped(`after interruption at a random point (seed ${seed})`, () => {
      const after = 1 + random(seed + 200)(40)
      return Effect.gen(function*() {
        const { ane, first, next } = yield* setup
        const before = yield* ane.liveHandles
        let emitted = 0
        const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
          const device = yield* Metal.open
          const kernel = yield* device.compile(plusOne())
          return yield* Stream.runDrain(Stream.fromIterable(inputs(200)).pipe(
            Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 2 }),
            Stream.tap(() => Effect.sync(() => { emitted++ }))
          ))
        })))
        while (emitted < after) yield* Effect.promise(() => new Promise((r) => setImmediate(r)))
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(yield* ane.liveHandles).toBe(before)
      }).pipe(Effect.provide(simLayer({ latency: { fixedUs: 50 }, gpu: { dispatchUs: 50 } })))
    })

    it.scoped(`when the consumer stops early (seed ${seed})`, () => {
      const take = 1 + random(seed + 300)(50)
      return Effect.gen(function*() {
        const { ane, first, next } = yield* setup
        const before = yield* ane.liveHandles
        const n = yield* Effect.scoped(Effect.gen(function*() {
          const device = yield* Metal.open
          const kernel = yield* device.compile(plusOne())
          return yield* Stream.runCount(Stream.fromIterable(inputs(200)).pipe(
            Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 3 }),
            Stream.take(take)
          ))
        }))
        expect(n).toBe(take)
        expect(yield* ane.liveHandles).toBe(before)
      }).pipe(Effect.provide(simLayer()))
    })
  }
})
