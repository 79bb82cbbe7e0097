/** The Ane client over a Backend: validation, budget, metrics, spans, lifetimes. @internal */
import * as Effect from "effect/Effect"
import { CompileOptions } from "../../schema/CompileOptions.js"
import type { CompileStats } from "../../schema/CompileStats.js"
import {
  type ClosedError, CompileBudgetExhaustedError, type EvalError, type InvalidArgumentError
} from "../../schema/errors.js"
import { CacheInfo, ClientSnapshot } from "../../schema/Telemetry.js"
import type { AneOptions, AneService, RealTimeTask } from "../Ane.js"
import { Backend } from "../Backend.js"
import * as Metrics from "../Metrics.js"
import { type Model, TraceEvals } from "../Model.js"
import { closed, describe, invalid, isClosed, lifetime } from "./errors.js"
import { locked } from "./lock.js"
import { makeModel, meterFor, ModelTypeId } from "./model.js"
import { open as openMetal } from "./metal.js"
import { makeSharedEvent, makeSurface } from "./sharedEvent.js"

/** @internal */
export const make = (aneOptions: AneOptions = {}) => Effect.gen(function*() {
  const backend = yield* Backend
  const info = yield* backend.probe

  const compileModel = (op: string, options: CompileOptions) =>
    Effect.gen(function*() {
      yield* CompileOptions.validate(options, op)
      const used = yield* backend.compileCount
      if (used >= backend.compileLimit) {
        return yield* new CompileBudgetExhaustedError({ op, used, limit: backend.compileLimit })
      }
      const traced = aneOptions.traceEvals === true || (yield* TraceEvals)
      const bm = yield* backend.compile(options)
      const life = lifetime()
      // Added after the backend's own release, so it runs first: the model is closed before it is unloaded.
      yield* Effect.addFinalizer(() => Effect.sync(() => { life.closed = true }))
      Metrics.compilesTotal.unsafeUpdate(1, Metrics.modelTags(bm.id))
      yield* Effect.annotateCurrentSpan("ane.model", bm.id)
      return makeModel(bm, life, traced)
    })

  const service: AneService = {
    info: Effect.succeed(info),
    compile: (options) =>
      compileModel("Ane.compile", options).pipe(Effect.withSpan("Ane.compile", { attributes: { "ane.backend": info.backend } })),
    compileWithStats: (options) =>
      compileModel("Ane.compileWithStats", options).pipe(
        Effect.map((model): { readonly model: Model; readonly stats: CompileStats } => ({ model, stats: model.stats })),
        Effect.withSpan("Ane.compileWithStats", { attributes: { "ane.backend": info.backend } })
      ),
    compileCount: backend.compileCount,
    compileLimit: backend.compileLimit,
    remainingBudget: Effect.map(backend.compileCount, (n) => Math.max(0, backend.compileLimit - n)),
    createSurface: (bytes) => makeSurface(backend, bytes).pipe(Effect.withSpan("Ane.createSurface")),
    createSharedEvent: makeSharedEvent(backend).pipe(Effect.withSpan("Ane.createSharedEvent")),
    liveHandles: backend.liveHandles,
    openMetal: openMetal(backend).pipe(Effect.withSpan("Ane.openMetal")),
    clientInfo: backend.clientInfo.pipe(Effect.withSpan("Ane.clientInfo")),
    beginRealTimeTask: Effect.map(backend.beginRealTimeTask, (task): RealTimeTask => ({
      eval: (model) =>
        Effect.suspend((): Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError> => {
          const op = "RealTimeTask.eval"
          const inner = (model as Partial<Model> | undefined)?.[ModelTypeId]
          if (inner === undefined) return Effect.fail(invalid(op, "model", "a Model compiled by this Ane client", describe(model)))
          if (isClosed(inner.life)) return closed(op, `model ${model.id}`)
          // The model's own request: serialised with the model's other calls.
          return locked(inner.lock, Effect.suspend(() => {
            const t0 = performance.now()
            return Effect.tap(task.eval(inner.backend), () => meterFor(inner.tags).done(t0))
          }))
        })
    })).pipe(Effect.withSpan("Ane.beginRealTimeTask")),
    snapshot: Effect.map(backend.clientInfo, (client) =>
      ClientSnapshot.make({ device: info, client, cache: CacheInfo.make({}) })).pipe(Effect.withSpan("Ane.snapshot"))
  }
  return service
})
