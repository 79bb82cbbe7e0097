/** The Model implementation over a BackendModel: lifetimes, metrics, optional spans. @internal */
import * as Effect from "effect/Effect"
import type * as MetricLabel from "effect/MetricLabel"
import { type ClosedError, EvalError, SharedEventRequiresPackageError } from "../../schema/errors.js"
import { SharedEventEvalOptions } from "../../schema/SharedEventEvalOptions.js"
import { EvalStats, EvalTelemetry, EventTiming, type ModelDiagnostics } from "../../schema/Telemetry.js"
import type { BackendModel, BackendRequest, SharedEventEval } from "../Backend.js"
import * as Metrics from "../Metrics.js"
import type { BoundRequest, Model, SharedEventEvalFailure, SharedEventOptions } from "../Model.js"
import type { SharedEvent } from "../SharedEvent.js"
import type { Surface } from "../Surface.js"
import { closed, describe, invalid, isClosed, type Lifetime } from "./errors.js"
import { locked, type RequestLock } from "./lock.js"
import { makeLockedRequest, register } from "./request.js"
import { checkU64, SharedEventTypeId, SurfaceTypeId } from "./sharedEvent.js"

/** Key of a Model's internals. @internal */
export const ModelTypeId: unique symbol = Symbol.for("effect-ane/Model")

/** What pools and streams need from a model. @internal */
export interface ModelInternals {
  readonly backend: BackendModel
  readonly life: Lifetime
  readonly tags: ReadonlyArray<MetricLabel.MetricLabel>
  readonly traced: boolean
  /** The lock of the model's own request (request 0). */
  readonly lock: RequestLock
  readonly instrument: (request: BackendRequest, resource: string, opPrefix: string, life: Lifetime) => Instrumented
}

/** Metered evaluation entry points of one request. @internal */
export interface Instrumented {
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  /** Raw async eval with metrics but no closed check (caller checked). */
  readonly evalAsyncUnchecked: Effect.Effect<void, EvalError | ClosedError>
  /** Async eval counting completions and durations only; the caller keeps the in-flight gauge (per batch). */
  readonly evalAsyncBare: Effect.Effect<void, EvalError | ClosedError>
  /** Adds `n` (possibly negative) to the model's in-flight gauge. */
  readonly inflight: (n: number) => void
  /** Records one completed evaluation that started at `t0` (performance.now()). */
  readonly record: (t0: number) => void
  /** Synchronous evaluation returning the engine's statistics; metered like `eval`, always traced. */
  readonly evalWithStats: Effect.Effect<EvalStats, EvalError | ClosedError>
}

/** Per-model metric bookkeeping: hooks are resolved once through a fixed tag array. @internal */
export const meter = (tags: ReadonlyArray<MetricLabel.MetricLabel>) => {
  let inflight = 0
  return {
    done: (t0: number) => {
      Metrics.evalsTotal.unsafeUpdate(1, tags)
      Metrics.evalDuration.unsafeUpdate(performance.now() - t0, tags)
    },
    enter: () => {
      Metrics.inflight.unsafeUpdate(++inflight, tags)
    },
    leave: () => {
      Metrics.inflight.unsafeUpdate(--inflight, tags)
    },
    add: (n: number) => {
      inflight += n
      Metrics.inflight.unsafeUpdate(inflight, tags)
    }
  }
}

const modelMeters = new WeakMap<ReadonlyArray<MetricLabel.MetricLabel>, ReturnType<typeof meter>>()
/** The meter of a model's tag set (one per model). @internal */
export const meterFor = (tags: ReadonlyArray<MetricLabel.MetricLabel>) => {
  let m = modelMeters.get(tags)
  if (m === undefined) {
    m = meter(tags)
    modelMeters.set(tags, m)
  }
  return m
}

/** @internal */
export const instrument = (
  bm: BackendModel,
  tags: ReadonlyArray<MetricLabel.MetricLabel>,
  traced: boolean
) =>
(request: BackendRequest, resource: string, opPrefix: string, life: Lifetime): Instrumented => {
  const m = meterFor(tags)
  const evalOp = `${opPrefix}.eval`
  const asyncOp = `${opPrefix}.evalAsync`
  const backendEval = request.eval
  const backendAsync = request.evalAsync
  // The sync path is the hot path: one suspend, a prebuilt tail, no allocation per call. A backend whose sync
  // eval yields could interleave two evals and swap their timings; counts stay exact.
  let t0 = 0
  const timedEval = Effect.zipRight(backendEval, Effect.sync(() => m.done(t0)))
  const closedEval = closed(evalOp, resource)
  let evalFx: Effect.Effect<void, EvalError | ClosedError> = Effect.suspend(() => {
    if (isClosed(life)) return closedEval
    t0 = performance.now()
    return timedEval
  })
  const asyncUnchecked = Effect.suspend(() => {
    const t0 = performance.now()
    m.enter()
    return Effect.ensuring(Effect.zipRight(backendAsync, Effect.sync(() => m.done(t0))), Effect.sync(m.leave))
  })
  let asyncFx: Effect.Effect<void, EvalError | ClosedError> = Effect.suspend(() =>
    isClosed(life) ? closed(asyncOp, resource) : asyncUnchecked
  )
  if (traced) {
    const attributes = { "ane.model": bm.id }
    evalFx = Effect.withSpan(evalFx, evalOp, { attributes, captureStackTrace: false })
    asyncFx = Effect.withSpan(asyncFx, asyncOp, { attributes, captureStackTrace: false })
  }
  const asyncBare = Effect.suspend(() => {
    const t0 = performance.now()
    return Effect.flatMap(backendAsync, () => {
      m.done(t0)
      return Effect.void
    })
  })
  const statsOp = `${opPrefix}.evalWithStats`
  const statsFx = Effect.suspend(() => {
    if (isClosed(life)) return closed(statsOp, resource)
    const t0 = performance.now()
    return Effect.tap(request.evalWithStats, () => m.done(t0))
  }).pipe(Effect.withSpan(statsOp, { attributes: { "ane.model": bm.id }, captureStackTrace: false }))
  return {
    eval: evalFx,
    evalAsync: asyncFx,
    evalAsyncUnchecked: asyncUnchecked,
    evalAsyncBare: asyncBare,
    inflight: m.add,
    record: m.done,
    evalWithStats: statsFx
  }
}

let nextBound = 1

/** Model.bindRequest: checks the surfaces, maps the backend request over them, and ties its life to all of them. */
const bindRequest = (
  bm: BackendModel,
  modelLife: Lifetime,
  inst: ReturnType<typeof instrument>,
  surfaces: { readonly inputs: ReadonlyArray<Surface>; readonly outputs: ReadonlyArray<Surface> }
) =>
  Effect.gen(function*() {
    const op = "Model.bindRequest"
    if (isClosed(modelLife)) return yield* closed(op, `model ${bm.id}`)
    const given = surfaces as Partial<typeof surfaces> | undefined
    const picked: Array<Array<Surface[typeof SurfaceTypeId]>> = []
    for (const [side, layouts] of [["inputs", bm.inputs], ["outputs", bm.outputs]] as const) {
      const list = given?.[side]
      if (!Array.isArray(list) || list.length !== layouts.length) {
        return yield* invalid(op, side, `an array of ${layouts.length} Surfaces (one per ${side.slice(0, -1)})`, describe(list))
      }
      const inner: Array<Surface[typeof SurfaceTypeId]> = []
      for (let i = 0; i < list.length; i++) {
        const s = (list[i] as Partial<Surface> | undefined)?.[SurfaceTypeId]
        if (s === undefined) return yield* invalid(op, `${side}[${i}]`, "a Surface from Ane.createSurface", describe(list[i]))
        if (s.isClosed()) return yield* closed(op, `surface ${s.surface.id}`)
        const need = layouts[i]!.allocSize
        if (s.surface.bytes.length < need) {
          return yield* invalid(op, `${side}[${i}]`, `a surface of at least ${need} bytes (the layout's allocSize)`,
            `${s.surface.bytes.length} bytes`)
        }
        inner.push(s)
      }
      picked.push(inner)
    }
    const request = yield* bm.mapRequestOver({
      inputs: picked[0]!.map((s) => s.surface),
      outputs: picked[1]!.map((s) => s.surface)
    })
    const all = [...picked[0]!, ...picked[1]!]
    let own = false
    // Closed with the model (parent), with its scope (own), or once one of its surfaces is.
    const life: Lifetime = {
      get closed() {
        return own || all.some((s) => s.isClosed())
      },
      set closed(v: boolean) {
        own = v
      },
      parent: modelLife
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => { own = true }))
    const resource = `bound request ${nextBound++} of model ${bm.id}`
    const r = makeLockedRequest(resource, "BoundRequest", life, request, bm.inputs, bm.outputs,
      inst(request, resource, "BoundRequest", life))
    const { lock, use, ...members } = r
    const bound: BoundRequest = { ...members, use: use(() => bound) }
    return register(bound, lock)
  }).pipe(Effect.withSpan("Model.bindRequest", { attributes: { "ane.model": bm.id }, captureStackTrace: false }))

const toOptions = (o: SharedEventOptions | undefined): SharedEventEvalOptions | undefined =>
  o === undefined || o instanceof SharedEventEvalOptions ? o : SharedEventEvalOptions.make({
    disableIoFencesUseSharedEvents: o.disableIoFencesUseSharedEvents ?? false,
    enableFwToFwSignal: o.enableFwToFwSignal ?? false
  })

/** Builds the public Model over a backend model whose lifetime is `life`. @internal */
export const makeModel = (bm: BackendModel, life: Lifetime, traced: boolean): Model => {
  const tags = Metrics.modelTags(bm.id)
  const resource = `model ${bm.id}`
  const inst = instrument(bm, tags, traced)
  const r = makeLockedRequest(resource, "Model", life, bm.request, bm.inputs, bm.outputs,
    inst(bm.request, resource, "Model", life))
  const { lock, use, ...io } = r
  const m = meterFor(tags)

  const shared = (
    op: string,
    wait: { readonly event: SharedEvent; readonly value: bigint } | undefined,
    signal: { readonly event: SharedEvent; readonly value: bigint } | undefined,
    options: SharedEventOptions | undefined
  ) =>
    Effect.suspend((): Effect.Effect<void, SharedEventEvalFailure> => {
      if (isClosed(life)) return closed(op, resource)
      for (const [name, spec] of [["wait", wait], ["signal", signal]] as const) {
        if (spec === undefined) continue
        const ev = spec.event as Partial<SharedEvent> | undefined
        const inner = ev?.[SharedEventTypeId]
        if (inner === undefined) {
          return Effect.fail(invalid(op, `${name} event`, "a SharedEvent from SharedEvent.make / Ane.createSharedEvent",
            describe(spec.event)))
        }
        if (inner.isClosed()) return closed(op, `shared event ${inner.event.port}`)
        const p = checkU64(op, `${name} value`, spec.value)
        if (p) return Effect.fail(p)
      }
      if (bm.capabilities.sharedEvents === "none") {
        return Effect.fail(new EvalError({ op, model: bm.id, hint: "this backend does not support shared-event evaluation" }))
      }
      // The engine's in-memory path is not known to honour shared events: package-only unless the backend says all.
      if (bm.capabilities.sharedEvents === "package-only" && bm.kind === "mil") {
        return Effect.fail(new SharedEventRequiresPackageError({ op, model: bm.id }))
      }
      const opts = toOptions(options)
      const spec: SharedEventEval = {
        ...(wait ? { wait: { event: wait.event[SharedEventTypeId].event, value: wait.value } } : {}),
        ...(signal ? { signal: { event: signal.event[SharedEventTypeId].event, value: signal.value } } : {}),
        ...(opts ? { options: opts } : {})
      }
      return locked(lock, Effect.suspend(() => {
        const t0 = performance.now()
        m.enter()
        return Effect.ensuring(
          Effect.zipRight(bm.request.evalWithSharedEvents(spec), Effect.sync(() => m.done(t0))),
          Effect.sync(m.leave)
        )
      }))
    }).pipe(Effect.withSpan(op, { attributes: { "ane.model": bm.id }, captureStackTrace: false }))

  const diagnostics = Effect.suspend(() =>
    isClosed(life) ? closed("Model.diagnostics", resource) : bm.probeDiagnostics
  )
  const signalTiming = (event: SharedEvent, value: bigint, options?: SharedEventOptions) =>
    Effect.suspend(() => {
      const t0 = process.hrtime.bigint()
      return Effect.map(shared("Model.evalWithSignalTiming", undefined, { event, value }, options), () => {
        const ns = Number(process.hrtime.bigint() - t0)
        return EventTiming.make({ enqueueNs: ns, totalNs: ns })
      })
    })

  const model: Model = {
    ...io,
    [ModelTypeId]: { backend: bm, life, tags, traced, lock, instrument: inst },
    id: bm.id,
    kind: bm.kind,
    stats: bm.stats,
    capabilities: bm.capabilities,
    use: use(() => model),
    diagnostics,
    bindRequest: (surfaces) => bindRequest(bm, life, inst, surfaces),
    telemetry: (stats) =>
      Effect.map(diagnostics, (d) =>
        EvalTelemetry.make({ stats: stats ?? EvalStats.unavailable, diagnostics: d, timing: EventTiming.empty })),
    evalWithSignalTiming: signalTiming,
    telemetryWithSignal: (event, value, options) =>
      Effect.flatMap(signalTiming(event, value, options), (timing) =>
        Effect.map(diagnostics, (d: ModelDiagnostics) => EvalTelemetry.make({ stats: EvalStats.unavailable, diagnostics: d, timing }))),
    evalWithSignalEvent: (event, value, options) =>
      shared("Model.evalWithSignalEvent", undefined, { event, value }, options),
    evalWithWaitEvent: (event, value, options) => shared("Model.evalWithWaitEvent", { event, value }, undefined, options),
    evalBidirectional: (wait, waitValue, signal, signalValue, options) =>
      shared("Model.evalBidirectional", { event: wait, value: waitValue }, { event: signal, value: signalValue }, options)
  }
  return register(model, lock)
}
