/**
 * Pipelined Stream evaluation. Effect 3's `Stream.mapEffect({ concurrency })` costs ~50 µs per element, so this
 * keeps its own machinery: chunks of at least `depth` elements run on `depth` long-lived lane fibers (one request
 * each) that emit the finished prefix a window at a time; smaller chunks get one daemon fiber per in-flight
 * evaluation, completed heads harvested in order. Upstream is prefetched on a fiber so a slow source never holds
 * back finished results. @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { ClosedError, type InvalidArgumentError } from "../../schema/errors.js"
import type { Model, NamedTensors } from "../Model.js"
import type { EvalStreamError, EvalStreamOptions } from "../RequestPool.js"
import { readF32, writeF32 } from "./codec.js"
import { describe, invalid, isClosed, lifetime } from "./errors.js"
import { checkF32, withInput, withOutput } from "./io.js"
import { ModelTypeId } from "./model.js"
import { nameTable } from "./names.js"
import { checkDepth, mapSlots, type Slot } from "./pool.js"
import { fromRecord, isRecord } from "./request.js"

const OP = "RequestPool.evalStream"
/**
 * Elements per lane in one emitted window. The first window of a chunk is small so results start flowing at once;
 * each next one doubles, up to a size that amortises the per-pull cost; lanes run at most one window ahead.
 */
const FIRST_WINDOW_PER_LANE = 2
/** Outputs up to this size (bytes per element) share one buffer per segment of a run. */
const SLAB_ELEMENT_BYTES = 4096
const MAX_WINDOW_PER_LANE = 64
const laneIndices: Array<ReadonlyArray<number>> = []
const lanesOf = (n: number) => (laneIndices[n] ??= Array.from({ length: n }, (_, i) => i))

/** Elements per output buffer segment of a run. */
const SEGMENT = 256

/** One chunk being evaluated by lanes (indices relative to `start`). */
interface Run {
  readonly start: number
  readonly n: number
  readonly lanes: number
  readonly elements: ReadonlyArray<ReadonlyArray<Float32Array>>
  readonly results: Array<ReadonlyArray<Float32Array> | undefined>
  readonly done: Uint8Array
  /** Elements below are all finished. */
  prefix: number
  emitted: number
  /** Elements below were validated. */
  checked: number
  /** Lanes start only elements below. */
  limit: number
  failure: Cause.Cause<EvalStreamError> | undefined
  readonly gates: Array<() => void>
  wake: (() => void) | undefined
  target: number
  readonly fibers: Array<Fiber.RuntimeFiber<void>>
  readonly slabs: Array<Array<ArrayBuffer | undefined>>
}

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
    let run: Run | undefined

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        life.closed = true
        const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        for (let i = inflightHead; i < inflight.length; i++) fibers.push(inflight[i]!.fiber)
        if (upstream) fibers.push(upstream)
        if (run !== undefined) {
          for (const f of run.fibers) fibers.push(f)
          free[0]!.evals.inflight(-run.lanes)
          run = undefined
        }
        return Fiber.interruptAll(fibers)
      })
    )

    const checkElement = (elem: unknown) => {
      if (!Array.isArray(elem) || elem.length !== ins.length) {
        return invalid(OP, "element", `an array of ${ins.length} Float32Array input(s), one per model input`, describe(elem))
      }
      for (let k = 0; k < ins.length; k++) {
        const x: unknown = elem[k]
        // The common case without building the error's strings; anything else gets the full check's message.
        if (x instanceof Float32Array && x.length === ins[k]!.logicalElements) continue
        const p = checkF32(OP, "input", ins, k, x, `element[${k}]`)
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
        for (let k = 0; k < ins.length; k++) {
          if (slot.request.access === undefined) writeF32(elem[k]!, slot.request.inputs[k]!, ins[k]!)
          else withInput(slot.request, k, (view) => writeF32(elem[k]!, view, ins[k]!))
        }
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
     * Run mode, when a chunk holds at least `depth` elements and nothing is in flight: `depth` lane fibers, each
     * evaluating every depth-th element of the chunk on its own request, so fork and wake-up costs are paid once per
     * chunk. Lanes never stop at a window's end (no barrier that idles the faster lanes); each pull emits the
     * finished prefix once a window's worth is done, and lanes may run at most one window past what was pulled.
     */
    const startRun = Effect.suspend((): Effect.Effect<void> => {
      const start = pendingIndex
      const n = pending.length - start
      pendingIndex = pending.length
      const lanes = Math.min(depth, n)
      const r: Run = {
        start, n, lanes, elements: pending, results: new Array(n), done: new Uint8Array(n),
        prefix: 0, emitted: 0, checked: 0, limit: 0, failure: undefined, gates: [], wake: undefined, target: 0,
        fibers: [], slabs: outs.map(() => [])
      }
      run = r
      free[0]!.evals.inflight(lanes)
      // Every lane is registered for the finalizer before anything can interrupt; the lanes themselves stay
      // interruptible.
      return Effect.uninterruptibleMask((restore) =>
        Effect.forEach(lanesOf(lanes), (l) =>
          Effect.map(Effect.forkDaemon(restore(lane(r, l))), (f) => {
            r.fibers.push(f)
          }), { discard: true }))
    })

    /** Output view for element `i` of a run: small outputs share one buffer per window-sized segment. */
    const outputView = (r: Run, k: number, i: number): Float32Array => {
      const n = outs[k]!.logicalElements
      if (n * 4 > SLAB_ELEMENT_BYTES) return new Float32Array(n)
      const seg = Math.floor(i / SEGMENT)
      const slab = (r.slabs[k]![seg] ??= new ArrayBuffer(n * 4 * Math.min(SEGMENT, r.n - seg * SEGMENT)))
      return new Float32Array(slab, (i - seg * SEGMENT) * n * 4, n)
    }

    const lane = (r: Run, l: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        const slot = free[free.length - 1 - l]!
        const request = slot.request
        const record = slot.evals.record
        const lanes = r.lanes
        let i = l
        let t0 = 0
        // Effects built once per lane and reused for every element: no per-element effect or closure allocation.
        const submit = Effect.suspend(() => {
          const elem = r.elements[r.start + i]!
          for (let k = 0; k < ins.length; k++) {
            // Under the surface lock where the backend has one (a closure only then).
            if (request.access === undefined) writeF32(elem[k]!, request.inputs[k]!, ins[k]!)
            else withInput(request, k, (view) => writeF32(elem[k]!, view, ins[k]!))
          }
          t0 = performance.now()
          return request.evalAsync
        })
        const gate = Effect.async<void>((resume) => {
          if (i < r.limit) return resume(Effect.void)
          r.gates.push(() => resume(Effect.void))
        })
        const harvest = (): Effect.Effect<void, EvalStreamError> => {
          record(t0)
          const result: Array<Float32Array> = new Array(outs.length)
          for (let k = 0; k < outs.length; k++) {
            const dst = outputView(r, k, i)
            if (request.access === undefined) readF32(request.outputs[k]!, outs[k]!, dst)
            else withOutput(request, k, (view) => readF32(view, outs[k]!, dst))
            result[k] = dst
          }
          r.results[i] = result
          r.done[i] = 1
          if (i === r.prefix) {
            let p = i + 1
            while (p < r.n && r.done[p] === 1) p++
            r.prefix = p
            if (r.wake !== undefined && p >= r.target) r.wake()
          }
          i += lanes
          return i >= r.n ? Effect.void : i < r.limit ? loop : gated
        }
        const loop: Effect.Effect<void, EvalStreamError> = Effect.flatMap(submit, harvest)
        const gated = Effect.zipRight(gate, loop)
        const body = i >= r.n ? Effect.void : i < r.limit ? loop : gated
        return Effect.catchAllCause(body, (cause) =>
          Effect.sync(() => {
            r.failure ??= cause
            if (r.wake !== undefined) r.wake()
          }))
      })

    /** Lets lanes start elements below `limit`, validating them first. */
    const extendLimit = (r: Run, limit: number): InvalidArgumentError | undefined => {
      for (; r.checked < limit; r.checked++) {
        const p = checkElement(r.elements[r.start + r.checked])
        if (p) return p
      }
      if (limit > r.limit) {
        r.limit = limit
        const gates = r.gates.splice(0, r.gates.length)
        for (const g of gates) g()
      }
      return undefined
    }

    /** Resumes once the finished prefix reaches `target` or a lane failed. */
    const awaitPrefix = (r: Run, target: number): Effect.Effect<void> =>
      Effect.async<void>((resume) => {
        if (r.prefix >= target || r.failure !== undefined) return resume(Effect.void)
        r.target = target
        r.wake = () => {
          r.wake = undefined
          resume(Effect.void)
        }
        return Effect.sync(() => {
          r.wake = undefined
        })
      })

    const stepRun = (r: Run): Effect.Effect<Chunk.Chunk<ReadonlyArray<Float32Array>>, Option.Option<EvalStreamError>> =>
      Effect.suspend(() => {
        if (isClosed(life)) return Effect.fail(Option.some(closedError(model)))
        const window = depth * windowPerLane
        windowPerLane = Math.min(MAX_WINDOW_PER_LANE, windowPerLane * 2)
        const target = Math.min(r.n, r.emitted + window)
        const p = extendLimit(r, Math.min(r.n, target + depth * windowPerLane))
        if (p) return Effect.fail(Option.some(p))
        return Effect.flatMap(awaitPrefix(r, target), () => {
          if (r.failure !== undefined) return Effect.failCause(Cause.map(r.failure, Option.some))
          const out = r.results.slice(r.emitted, r.prefix) as Array<ReadonlyArray<Float32Array>>
          // Drop the run's references to what was emitted, so memory held stays about one window.
          for (let j = r.emitted; j < r.prefix; j++) r.results[j] = undefined
          for (let seg = Math.floor(r.emitted / SEGMENT); seg < Math.floor(r.prefix / SEGMENT); seg++) {
            for (const slabs of r.slabs) slabs[seg] = undefined
          }
          r.emitted = r.prefix
          if (r.emitted >= r.n) {
            run = undefined
            free[0]!.evals.inflight(-r.lanes)
          }
          return Effect.succeed(Chunk.unsafeFromArray(out))
        })
      })

    const step: Step = Effect.gen(function*() {
      while (true) {
        if (upstream !== undefined) {
          const exit = upstream.unsafePoll()
          if (exit !== null) yield* absorbUpstream(exit)
        }
        if (run !== undefined) {
          // Prefetch the next chunk while the last window of this one runs.
          if (upstream === undefined && !upstreamDone && run.n - run.emitted <= depth * windowPerLane) {
            upstream = yield* Effect.forkDaemon(pull)
          }
          return yield* stepRun(run)
        }
        const remaining = pending.length - pendingIndex
        if (inflightHead === inflight.length && (remaining >= depth || (upstreamDone && remaining > 0))) {
          yield* startRun
          continue
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
            withOutput(head.slot.request, k, (view) => readF32(view, outs[k]!, dst))
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

const OP_NAMED = "RequestPool.evalStreamNamed"

/** {@link evalStream} with each element's inputs and outputs as records keyed by name. @internal */
export const evalStreamNamed = (model: Model, options: EvalStreamOptions) =>
<E, R>(
  inputs: Stream.Stream<NamedTensors, E, R>
): Stream.Stream<NamedTensors, E | EvalStreamError, R> => {
  const ins = nameTable("input", model.inputs)
  const keys = nameTable("output", model.outputs).keys
  const n = model.inputs.length
  const toList = (chunk: Chunk.Chunk<NamedTensors>): Effect.Effect<Chunk.Chunk<ReadonlyArray<Float32Array>>, InvalidArgumentError> => {
    const out: Array<ReadonlyArray<Float32Array>> = []
    for (const rec of chunk) {
      if (!isRecord(rec)) {
        return Effect.fail(invalid(OP_NAMED, "element", `a record of ${n} Float32Array input(s) by input name`, describe(rec)))
      }
      const list = fromRecord(OP_NAMED, ins, n, rec)
      if (!Array.isArray(list)) return Effect.fail(list as InvalidArgumentError)
      for (let k = 0; k < n; k++) {
        const x = list[k]
        if (x instanceof Float32Array && x.length === model.inputs[k]!.logicalElements) continue
        return Effect.fail(checkF32(OP_NAMED, "input", model.inputs, k, x, `element.${ins.keys[k]}`)!)
      }
      out.push(list)
    }
    return Effect.succeed(Chunk.unsafeFromArray(out))
  }
  const toRecord = (ys: ReadonlyArray<Float32Array>): NamedTensors => {
    const rec: Record<string, Float32Array> = {}
    for (let i = 0; i < ys.length; i++) rec[keys[i]!] = ys[i]!
    return rec
  }
  return inputs.pipe(Stream.mapChunksEffect(toList), evalStream(model, options), Stream.map(toRecord))
}
