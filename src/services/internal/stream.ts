/**
 * Pipelined Stream evaluation. Effect 3's `Stream.mapEffect({ concurrency })` costs ~50 µs per element, so this
 * keeps its own window: one daemon fiber per in-flight evaluation (inputs written and outputs read on the
 * consuming fiber), completed heads harvested in order a chunk at a time, and upstream prefetched on a fiber so
 * a slow source never holds back finished results. @internal
 */
import { Cause, Chunk, Effect, Exit, Fiber, Option, Stream } from "effect"
import { ClosedError } from "../../schema/errors.js"
import type { Model } from "../Model.js"
import type { EvalStreamError, EvalStreamOptions } from "../RequestPool.js"
import { readF32, writeF32 } from "./codec.js"
import { describe, invalid, isClosed, lifetime } from "./errors.js"
import { checkF32 } from "./io.js"
import { ModelTypeId } from "./model.js"
import { checkDepth, mapSlots, type Slot } from "./pool.js"

const OP = "RequestPool.evalStream"
/**
 * Elements per lane in one window. The first window of a chunk is small so results start flowing at once; each next
 * one doubles, up to a size that amortises the per-window forks to a few percent of an element's cost.
 */
const FIRST_WINDOW_PER_LANE = 2
/** Outputs up to this size (bytes per element) share one buffer per window. */
const SLAB_ELEMENT_BYTES = 4096
const MAX_WINDOW_PER_LANE = 64
const laneIndices: Array<ReadonlyArray<number>> = []
const lanesOf = (n: number) => (laneIndices[n] ??= Array.from({ length: n }, (_, i) => i))

interface InFlight {
  readonly fiber: Fiber.RuntimeFiber<void, EvalStreamError>
  readonly slot: Slot
}

/** Resumes when any of the fibers has finished (possibly at once). */
const awaitAny = (fibers: ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let done = false
    const observer = () => {
      if (done) return
      done = true
      for (const f of fibers) f.removeObserver(observer)
      resume(Effect.void)
    }
    for (const f of fibers) {
      f.addObserver(observer)
      if (done) break
    }
    return Effect.sync(() => {
      done = true
      for (const f of fibers) f.removeObserver(observer)
    })
  })

/** @internal */
export const evalStream = (model: Model, options: EvalStreamOptions) =>
<E, R>(
  inputs: Stream.Stream<ReadonlyArray<Float32Array>, E, R>
): Stream.Stream<ReadonlyArray<Float32Array>, E | EvalStreamError, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const depth = options?.depth
    const bad = checkDepth(OP, "depth", depth)
    if (bad) return yield* Effect.fail(bad)
    const inner = model[ModelTypeId]
    if (isClosed(inner.life)) return yield* Effect.fail(closedError(model))
    const life = lifetime(inner.life)
    const slots = yield* mapSlots(OP, model, depth, life, "stream")
    const pull = yield* Stream.toPull(inputs)

    const ins = model.inputs
    const outs = model.outputs
    const free: Array<Slot> = slots.slice().reverse()
    const inflight: Array<InFlight> = []
    let inflightHead = 0
    let pending: ReadonlyArray<ReadonlyArray<Float32Array>> = []
    let pendingIndex = 0
    let windowPerLane = FIRST_WINDOW_PER_LANE
    let upstream: Fiber.RuntimeFiber<Chunk.Chunk<ReadonlyArray<Float32Array>>, Option.Option<E>> | undefined
    let upstreamDone = false

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        life.closed = true
        const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        for (let i = inflightHead; i < inflight.length; i++) fibers.push(inflight[i]!.fiber)
        if (upstream) fibers.push(upstream)
        return Fiber.interruptAll(fibers)
      })
    )

    const checkElement = (elem: unknown) => {
      if (!Array.isArray(elem) || elem.length !== ins.length) {
        return invalid(OP, "element", `an array of ${ins.length} Float32Array input(s), one per model input`, describe(elem))
      }
      for (let k = 0; k < ins.length; k++) {
        const p = checkF32(OP, "input", ins, k, elem[k], `element[${k}]`)
        if (p) return p
      }
      return undefined
    }

    type Step = Effect.Effect<Chunk.Chunk<ReadonlyArray<Float32Array>>, Option.Option<E | EvalStreamError>, R>

    /** Starts evaluations while there are free requests and buffered inputs. */
    const dispatch = Effect.suspend((): Effect.Effect<void, Option.Option<EvalStreamError>, R> => {
      if (free.length === 0 || pendingIndex >= pending.length) return Effect.void
      if (isClosed(life)) return Effect.fail(Option.some(closedError(model)))
      const started: Array<Slot> = []
      while (free.length > 0 && pendingIndex < pending.length) {
        const elem = pending[pendingIndex++]!
        const p = checkElement(elem)
        if (p) {
          for (const s of started) free.push(s)
          return Effect.fail(Option.some(p))
        }
        const slot = free.pop()!
        for (let k = 0; k < ins.length; k++) writeF32(elem[k]!, slot.request.inputs[k]!, ins[k]!)
        started.push(slot)
      }
      return Effect.forEach(started, (slot) =>
        Effect.map(Effect.forkDaemon(slot.evals.evalAsyncUnchecked), (fiber) => {
          inflight.push({ fiber, slot })
        }), { discard: true })
    })

    /** Takes the upstream prefetch result if it has arrived. */
    const absorbUpstream = (exit: Exit.Exit<Chunk.Chunk<ReadonlyArray<Float32Array>>, Option.Option<E>>) => {
      upstream = undefined
      if (Exit.isSuccess(exit)) {
        pending = Chunk.toReadonlyArray(exit.value)
        pendingIndex = 0
        windowPerLane = FIRST_WINDOW_PER_LANE
        return Effect.void
      }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && Option.isNone(failure.value)) {
        upstreamDone = true
        return Effect.void
      }
      return Effect.failCause(Cause.map(exit.cause, (o) => o as Option.Option<E | EvalStreamError>))
    }

    /**
     * Window mode, when a chunk holds at least `depth` elements and nothing is in flight: `depth` lanes, each a
     * fiber evaluating every depth-th element of the window on its own request, so the fork and wake-up costs are
     * paid per window instead of per element. Order comes from the result slots.
     */
    const runWindow = Effect.suspend((): Effect.Effect<Chunk.Chunk<ReadonlyArray<Float32Array>>, Option.Option<EvalStreamError>> => {
      if (isClosed(life)) return Effect.fail(Option.some(closedError(model)))
      const start = pendingIndex
      const end = Math.min(pending.length, start + depth * windowPerLane)
      windowPerLane = Math.min(MAX_WINDOW_PER_LANE, windowPerLane * 2)
      for (let i = start; i < end; i++) {
        const p = checkElement(pending[i]!)
        if (p) return Effect.fail(Option.some(p))
      }
      pendingIndex = end
      const results: Array<ReadonlyArray<Float32Array>> = new Array(end - start)
      // Small outputs are views into one buffer per window: a fresh typed array costs ~0.5 µs, a view ~50 ns.
      const slabs = outs.map((o) =>
        o.logicalElements * 4 <= SLAB_ELEMENT_BYTES ? new Float32Array(o.logicalElements * (end - start)).buffer : undefined
      )
      const lanes = Math.min(depth, end - start)
      const lane = (l: number) =>
        Effect.suspend(() => {
          const slot = free[free.length - 1 - l]!
          const evalAsync = slot.request.evalAsync
          const record = slot.evals.record
          let i = start + l
          let t0 = 0
          const next = (): Effect.Effect<void, EvalStreamError> => {
            if (i >= end) return Effect.void
            const elem = pending[i]!
            for (let k = 0; k < ins.length; k++) writeF32(elem[k]!, slot.request.inputs[k]!, ins[k]!)
            t0 = performance.now()
            return Effect.flatMap(evalAsync, () => {
              record(t0)
              const result: Array<Float32Array> = new Array(outs.length)
              for (let k = 0; k < outs.length; k++) {
                const n = outs[k]!.logicalElements
                const slab = slabs[k]
                const dst = slab === undefined ? new Float32Array(n) : new Float32Array(slab, (i - start) * n * 4, n)
                readF32(slot.request.outputs[k]!, outs[k]!, dst)
                result[k] = dst
              }
              results[i - start] = result
              i += lanes
              return next()
            })
          }
          return next()
        })
      const gauge = free[0]!.evals.inflight
      gauge(lanes)
      return Effect.forEach(lanesOf(lanes), lane, { concurrency: lanes, discard: true }).pipe(
        Effect.ensuring(Effect.sync(() => gauge(-lanes))),
        Effect.mapError(Option.some),
        Effect.as(Chunk.unsafeFromArray(results))
      )
    })

    const step: Step = Effect.gen(function*() {
      while (true) {
        if (upstream !== undefined) {
          const exit = upstream.unsafePoll()
          if (exit !== null) yield* absorbUpstream(exit)
        }
        const remaining = pending.length - pendingIndex
        if (inflightHead === inflight.length && (remaining >= depth || (upstreamDone && remaining > 0))) {
          // Prefetch the next chunk while this window runs.
          if (upstream === undefined && !upstreamDone && pending.length - pendingIndex <= depth * windowPerLane) {
            upstream = yield* Effect.forkDaemon(pull)
          }
          return yield* runWindow
        }
        yield* dispatch
        if (upstream === undefined && !upstreamDone && pendingIndex >= pending.length) {
          upstream = yield* Effect.forkDaemon(pull)
        }
        // Harvest finished evaluations from the head, in order.
        let out: Array<ReadonlyArray<Float32Array>> | undefined
        while (inflightHead < inflight.length) {
          const head = inflight[inflightHead]!
          const exit = head.fiber.unsafePoll()
          if (exit === null) break
          inflightHead++
          if (Exit.isFailure(exit)) {
            free.push(head.slot)
            return yield* Effect.failCause(Cause.map(exit.cause, Option.some))
          }
          const result: Array<Float32Array> = new Array(outs.length)
          for (let k = 0; k < outs.length; k++) {
            const dst = new Float32Array(outs[k]!.logicalElements)
            readF32(head.slot.request.outputs[k]!, outs[k]!, dst)
            result[k] = dst
          }
          free.push(head.slot)
          ;(out ??= []).push(result)
        }
        if (inflightHead === inflight.length) {
          inflight.length = 0
          inflightHead = 0
        }
        if (out !== undefined) {
          yield* dispatch
          return Chunk.unsafeFromArray(out)
        }
        const busy = inflightHead < inflight.length
        if (!busy && pendingIndex >= pending.length) {
          if (upstreamDone) return yield* Effect.fail(Option.none())
          yield* absorbUpstream(yield* Fiber.await(upstream!))
          continue
        }
        const waitOn: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        if (busy) waitOn.push(inflight[inflightHead]!.fiber)
        if (upstream !== undefined) waitOn.push(upstream)
        yield* awaitAny(waitOn)
      }
    })

    return Stream.repeatEffectChunkOption(step)
  }))

const closedError = (model: Model) => new ClosedError({ op: OP, resource: `model ${model.id}` })
