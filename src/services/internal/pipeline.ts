/**
 * The ANE↔GPU Pipeline (spec/native-protocol.md §10.2) and its Stream stage. The stage gives each element in flight
 * a slot of its own: mapped requests of the models, no-copy GPU buffers over their surfaces, and an event pair with
 * its own counter, so one element's GPU step overlaps the next one's ANE step without either overwriting the
 * other's data or signalling out of order. @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  ClosedError, type EvalError, type InvalidArgumentError, type MetalError, SharedEventRequiresPackageError
} from "../../schema/errors.js"
import { SharedEventEvalOptions } from "../../schema/SharedEventEvalOptions.js"
import type { TensorLayout } from "../../schema/TensorLayout.js"
import type {
  BackendComputePipeline, BackendMetalBuffer, BackendMetalEvent, BackendModel, BackendRequest, BackendSharedEvent
} from "../Backend.js"
import type { ComputePipeline, DispatchOptions, MetalDevice } from "../Metal.js"
import type { Model } from "../Model.js"
import type { Pipeline, PipelineStreamError, StreamOptions } from "../Pipeline.js"
import { readF32, writeF32 } from "./codec.js"
import { closed, describe, invalid, isClosed } from "./errors.js"
import { checkF32 } from "./io.js"
import { checkDispatch, internalBuffer, internalEventPair, MetalTypeId, ownedAlive } from "./metal.js"
import { ModelTypeId } from "./model.js"

/** The flags every Pipeline evaluation passes: shared events replace the I/O fences (§10.2). */
const FENCES = SharedEventEvalOptions.make({ disableIoFencesUseSharedEvents: true })

/** Most slots a Stream stage keeps (each maps a request per model and holds an event pair). */
export const MAX_STREAM_DEPTH = 16

/** @internal */
export const make = (device: MetalDevice): Effect.Effect<Pipeline, EvalError | MetalError | ClosedError, Scope.Scope> =>
  Effect.gen(function*() {
    const pair = yield* device.newSharedEvent
    let counter = 0n
    const { ane, metal } = pair
    const pipeline: Pipeline = {
      metal: device,
      aneEvent: ane,
      metalEvent: metal,
      counter: Effect.sync(() => counter),
      aneToMetal: (model) =>
        Effect.suspend(() => {
          const v = ++counter
          return Effect.as(model.evalWithSignalEvent(ane, v, FENCES), v)
        }),
      waitOnAne: (model) =>
        Effect.suspend(() => {
          const w = counter
          return Effect.as(model.evalWithWaitEvent(ane, w, FENCES), w)
        }),
      bidirectional: (model) =>
        Effect.suspend(() => {
          const w = counter
          const s = ++counter
          return Effect.as(model.evalBidirectional(ane, w, ane, s, FENCES), { wait: w, signal: s })
        }),
      dispatch: (kernel, options) =>
        Effect.suspend(() => {
          const w = counter
          const s = ++counter
          return Effect.as(
            device.dispatch(kernel, { ...options, wait: { event: metal, value: w }, signal: { event: metal, value: s } }),
            s
          )
        })
    }
    return pipeline
  })

/** One element's resources in the Stream stage. */
interface Slot {
  readonly first: BackendRequest
  readonly next: BackendRequest | undefined
  readonly ane: BackendSharedEvent
  readonly metal: BackendMetalEvent
  readonly buffers: ReadonlyArray<BackendMetalBuffer>
  counter: bigint
}

/** Runs `f` over a request's surface under the backend's CPU lock when it has one. */
const touch = <A>(r: BackendRequest, side: "input" | "output", i: number, mode: "read" | "write", f: (b: Uint8Array) => A): A =>
  r.access !== undefined ? r.access(side, i, mode, f) : f(side === "input" ? r.inputs[i]! : r.outputs[i]!)

const OP = "Pipeline.stream"

const modelOf = (argument: string, m: unknown): { model: Model; bm: BackendModel } | InvalidArgumentError | ClosedError => {
  const inner = (m as Partial<Model> | undefined)?.[ModelTypeId]
  if (inner === undefined) return invalid(OP, argument, "a Model", describe(m))
  if (isClosed(inner.life)) return new ClosedError({ op: OP, resource: `model ${(m as Model).id}` })
  return { model: m as Model, bm: inner.backend }
}

/** @internal */
export const stream = (device: MetalDevice, options: StreamOptions) =>
<E, R>(
  inputs: Stream.Stream<ReadonlyArray<Float32Array>, E, R>
): Stream.Stream<ReadonlyArray<Float32Array>, E | PipelineStreamError, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const dev = device?.[MetalTypeId]
    if (dev === undefined) return yield* Effect.fail(invalid(OP, "device", "a MetalDevice from Metal.open", describe(device)))
    if (dev.life.closed) return yield* closed(OP, `Metal device ${device.name}`)
    const o = options as Partial<StreamOptions> | undefined
    if (typeof o !== "object" || o === null) return yield* Effect.fail(invalid(OP, "options", "StreamOptions", describe(options)))
    const depth = o.depth ?? 2
    if (typeof depth !== "number" || !Number.isInteger(depth) || depth < 1 || depth > MAX_STREAM_DEPTH) {
      return yield* Effect.fail(invalid(OP, "depth", `an integer in [1, ${MAX_STREAM_DEPTH}]`, describe(depth)))
    }
    const first = modelOf("first", o.first)
    if ("_tag" in first) return yield* Effect.fail(first)
    const next = o.next === undefined ? undefined : modelOf("next", o.next)
    if (next !== undefined && "_tag" in next) return yield* Effect.fail(next)
    for (const m of next === undefined ? [first] : [first, next]) {
      const c = m.bm.capabilities.sharedEvents
      if (c === "none" || (c === "package-only" && m.bm.kind === "mil")) {
        return yield* Effect.fail(new SharedEventRequiresPackageError({ op: OP, model: m.bm.id }))
      }
    }
    const kernelOf = () => ownedAlive<BackendComputePipeline>(OP, "kernel", "a kernel compiled by this device", o.kernel, dev)
    const kernel = kernelOf()
    if ("_tag" in kernel) return yield* Effect.fail(kernel)
    // Checked once, before anything is mapped: the same grid, group and params serve every element.
    const template: DispatchOptions = {
      buffers: [], grid: o.grid!,
      ...(o.threadsPerThreadgroup !== undefined ? { threadsPerThreadgroup: o.threadsPerThreadgroup } : {}),
      ...(o.params !== undefined ? { params: o.params } : {})
    }
    const checked = checkDispatch(OP, dev, o.kernel as ComputePipeline, template)
    if ("_tag" in checked) return yield* Effect.fail(checked)

    // The buffers of a slot, in binding order: the first model's outputs, then the next model's inputs.
    const makeSlot = Effect.gen(function*() {
      const a = yield* first.bm.mapRequest
      const b = next === undefined ? undefined : yield* next.bm.mapRequest
      const events = yield* internalEventPair(dev)
      const views = [...a.outputs, ...(b?.inputs ?? [])]
      const buffers = yield* Effect.forEach(views, (v) => internalBuffer(dev, v))
      const slot: Slot = { first: a, next: b, ane: events.ane, metal: events.metal, buffers, counter: 0n }
      return slot
    })
    const slots = yield* Effect.replicateEffect(makeSlot, depth)

    const inLayouts = first.model.inputs
    const last = next ?? first
    const outLayouts: ReadonlyArray<TensorLayout> = last.model.outputs
    const lastRequest = (s: Slot) => s.next ?? s.first
    const alive = () => !dev.life.closed && !isClosed(first.model[ModelTypeId].life) &&
      (next === undefined || !isClosed(next.model[ModelTypeId].life))

    const job = (slot: Slot, element: ReadonlyArray<Float32Array>) =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<Float32Array>, PipelineStreamError> => {
        if (!alive()) return closed(OP, `pipeline over model ${first.model.id}`)
        const k = kernelOf()
        if ("_tag" in k) return Effect.fail(k)
        if (!Array.isArray(element) || element.length !== inLayouts.length) {
          return Effect.fail(invalid(OP, "element", `an array of ${inLayouts.length} Float32Array inputs`, describe(element)))
        }
        for (let k = 0; k < element.length; k++) {
          const p = checkF32(OP, "input", inLayouts, k, element[k])
          if (p) return Effect.fail(p)
        }
        for (let k = 0; k < element.length; k++) {
          touch(slot.first, "input", k, "write", (bytes) => writeF32(element[k]!, bytes, inLayouts[k]!))
        }
        // ANE signals v1; the GPU waits for v1 and signals v2; the next model waits for v2 and signals v3. The
        // engine's steps go in turn on this fiber and the GPU's on one of its own, so only the events order them.
        const v1 = ++slot.counter
        const v2 = ++slot.counter
        // A failed step still has the CPU signal the value it owed, so the other side's wait ends (on hardware it
        // would otherwise hold the engine or the GPU); the element then fails with the first step's error.
        const owe = (value: bigint) => <A, E>(step: Effect.Effect<A, E>) =>
          Effect.tapErrorCause(step, () => Effect.ignore(slot.ane.signal(value)))
        const gpu = dev.metal.dispatch({
          ...checked, buffers: slot.buffers, wait: { event: slot.metal, value: v1 }, signal: { event: slot.metal, value: v2 }
        }).pipe(owe(v2))
        const a = slot.first.evalWithSharedEvents({ signal: { event: slot.ane, value: v1 }, options: FENCES }).pipe(owe(v1))
        let engine: Effect.Effect<void, PipelineStreamError> = a
        if (slot.next !== undefined) {
          const v3 = ++slot.counter
          engine = Effect.zipRight(a, slot.next.evalWithSharedEvents({
            wait: { event: slot.ane, value: v2 }, signal: { event: slot.ane, value: v3 }, options: FENCES
          }))
        }
        // The GPU step is a child fiber: it is interrupted if this one ends first.
        return Effect.zipRight(
          Effect.flatMap(Effect.fork(gpu), (f) => Effect.zipRight(engine, Effect.flatten(Fiber.await(f)))),
          Effect.sync(() => {
            const r = lastRequest(slot)
            return outLayouts.map((l, k) => {
              const out = new Float32Array(l.logicalElements)
              touch(r, "output", k, "read", (bytes) => readF32(bytes, l, out))
              return out
            })
          })
        )
      })

    // Element `seq` runs on slot `seq % depth`; taking a slot first joins the element that held it, so results
    // come out in order and at most `depth` elements are in flight.
    const ring: Array<Fiber.RuntimeFiber<ReadonlyArray<Float32Array>, PipelineStreamError> | undefined> =
      new Array(depth).fill(undefined)
    let seq = 0
    yield* Effect.addFinalizer(() => Fiber.interruptAll(ring.filter((f) => f !== undefined)))
    const take = (k: number) =>
      Effect.suspend(() => {
        const f = ring[k]
        ring[k] = undefined
        return f === undefined ? Effect.succeed(undefined) : Effect.flatten(Fiber.await(f))
      })
    const step = (chunk: Chunk.Chunk<ReadonlyArray<Float32Array>>) =>
      Effect.gen(function*() {
        const out: Array<ReadonlyArray<Float32Array>> = []
        for (const element of chunk) {
          const k = seq % depth
          const done = yield* take(k)
          if (done !== undefined) out.push(done)
          ring[k] = yield* Effect.forkDaemon(job(slots[k]!, element))
          seq++
        }
        return Chunk.unsafeFromArray(out)
      })
    const drain = Effect.gen(function*() {
      const out: Array<ReadonlyArray<Float32Array>> = []
      for (let i = 0; i < depth; i++) {
        const done = yield* take((seq + i) % depth)
        if (done !== undefined) out.push(done)
      }
      return out
    })
    return inputs.pipe(Stream.mapChunksEffect(step), Stream.concat(Stream.fromIterableEffect(drain)))
  }))
