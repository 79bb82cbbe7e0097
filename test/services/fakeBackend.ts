/** A controllable Backend for service tests: counts live handles, injects faults, copies inputs to outputs. */
import { Effect, Layer, Ref } from "effect"
import { CompileStats } from "../../src/schema/CompileStats.js"
import type { CompileOptions } from "../../src/schema/CompileOptions.js"
import { CompileBudgetExhaustedError, CompileError, EvalError, MapError, ModelLoadError } from "../../src/schema/errors.js"
import { TensorLayout } from "../../src/schema/TensorLayout.js"
import { ClientInfo, EvalStats, ModelDiagnostics, PerfCounter } from "../../src/schema/Telemetry.js"
import {
  Backend,
  type BackendCapabilities,
  type BackendModel,
  type BackendRequest,
  type BackendSharedEvent,
  type BackendSurface,
  stubDeviceInfo
} from "../../src/services/Backend.js"

export interface Fault {
  readonly stage: "compile" | "load" | "map" | "eval"
  /** 1-based occurrence of that stage that fails. */
  readonly nth: number
  readonly code?: number
  readonly domain?: string
}

export interface FakeOptions {
  readonly inputs?: ReadonlyArray<TensorLayout>
  readonly outputs?: ReadonlyArray<TensorLayout>
  readonly compileLimit?: number
  readonly faults?: ReadonlyArray<Fault>
  readonly capabilities?: BackendCapabilities
  /** evalAsync: sleep this long (ms) before evaluating; 0 = one yield. */
  readonly asyncDelayMs?: number
}

export interface FakeStats {
  live: number
  compiles: number
  evals: number
  asyncInFlight: number
  maxAsyncInFlight: number
  /** Evaluations through a real-time task. */
  realTimeEvals: number
  readonly counts: Record<Fault["stage"], number>
}

/** fp16 [1, 3, 2, 5]: row stride 64 > 10 bytes, so padding matters. */
export const paddedLayout = TensorLayout.packed({ channels: 3, height: 2, width: 5, elemSize: 2 })
/** fp32 [1, 2, 1, 4]. */
export const f32Layout = TensorLayout.packed({ channels: 2, height: 1, width: 4, elemSize: 4 })

export const makeFake = (options: FakeOptions = {}) => {
  const inputs = options.inputs ?? [paddedLayout, f32Layout]
  const outputs = options.outputs ?? inputs
  const stats: FakeStats = {
    live: 0, compiles: 0, evals: 0, asyncInFlight: 0, maxAsyncInFlight: 0, realTimeEvals: 0,
    counts: { compile: 0, load: 0, map: 0, eval: 0 }
  }
  const fault = (stage: Fault["stage"]) => {
    const n = ++stats.counts[stage]
    return options.faults?.find((f) => f.stage === stage && f.nth === n)
  }
  const native = (f: Fault, op: string) => ({
    op,
    ...(f.domain !== undefined ? { domain: f.domain } : {}),
    ...(f.code !== undefined ? { code: f.code } : {})
  })
  const handle = <A>(acquire: Effect.Effect<A>) =>
    Effect.acquireRelease(Effect.zipLeft(acquire, Effect.sync(() => { stats.live++ })), () => Effect.sync(() => { stats.live-- }))
  const limit = options.compileLimit ?? 119
  let eventPorts = 100

  const makeRequest = (
    id: string,
    ins: ReadonlyArray<Uint8Array> = inputs.map((l) => new Uint8Array(l.allocSize)),
    outs: ReadonlyArray<Uint8Array> = outputs.map((l) => new Uint8Array(l.allocSize))
  ): BackendRequest => {
    const run = Effect.suspend(() => {
      const f = fault("eval")
      if (f) return Effect.fail(new EvalError({ ...native(f, "eval"), model: id }))
      stats.evals++
      for (let k = 0; k < outs.length && k < ins.length; k++) outs[k]!.set(ins[k]!.subarray(0, outs[k]!.length))
      return Effect.void
    })
    const evalAsync = Effect.suspend(() => {
      stats.asyncInFlight++
      stats.maxAsyncInFlight = Math.max(stats.maxAsyncInFlight, stats.asyncInFlight)
      const wait = (options.asyncDelayMs ?? 0) > 0 ? Effect.sleep(options.asyncDelayMs!) : Effect.yieldNow()
      return Effect.ensuring(Effect.zipRight(wait, run), Effect.sync(() => { stats.asyncInFlight-- }))
    })
    return {
      inputs: ins,
      outputs: outs,
      eval: run,
      evalAsync,
      evalWithSharedEvents: (spec) =>
        Effect.gen(function*() {
          if (spec.wait) yield* spec.wait.event.wait(spec.wait.value, 1000)
          yield* run
          if (spec.signal) yield* spec.signal.event.signal(spec.signal.value)
        }),
      // Reports the eval's ordinal as its time, so a test can tell which evaluation the stats belong to.
      evalWithStats: Effect.map(run, () => EvalStats.make({
        ...EvalStats.unavailable,
        source: "hardware",
        hwExecutionNs: 1000 + stats.evals,
        perfCounters: [PerfCounter.make({ index: 0, name: "fake", value: BigInt(stats.evals) })]
      }))
    }
  }

  const compile = (o: CompileOptions) =>
    Effect.gen(function*() {
      if (stats.compiles >= limit) {
        return yield* new CompileBudgetExhaustedError({ op: "compile", used: stats.compiles, limit })
      }
      const id = o._tag === "mil" ? `fake:mil:${o.text.length}` : `fake:${o.path}`
      const fc = fault("compile")
      if (fc) return yield* new CompileError({ ...native(fc, "compile"), model: id, diagnostics: [] })
      yield* handle(Effect.void)
      const fl = fault("load")
      if (fl) return yield* new ModelLoadError({ ...native(fl, "load"), model: id })
      stats.compiles++
      const mapOne = Effect.suspend(() => {
        const fm = fault("map")
        return fm ? Effect.fail(new MapError({ ...native(fm, "map"), model: id })) : handle(Effect.sync(() => makeRequest(id)))
      })
      const request = yield* mapOne
      return {
        id,
        kind: o._tag,
        inputs,
        outputs,
        stats: CompileStats.make({ compileNs: 10, loadNs: 5, totalNs: 15 }),
        capabilities: options.capabilities ?? { sharedEvents: "all", asyncEval: true },
        request,
        mapRequest: mapOne,
        mapRequestOver: (given: { readonly inputs: ReadonlyArray<BackendSurface>; readonly outputs: ReadonlyArray<BackendSurface> }) =>
          handle(Effect.sync(() => makeRequest(id,
            given.inputs.map((x, i) => x.bytes.subarray(0, inputs[i]!.allocSize)),
            given.outputs.map((x, i) => x.bytes.subarray(0, outputs[i]!.allocSize))))),
        probeDiagnostics: Effect.sync(() => ModelDiagnostics.make({
          programClass: "FakeModel",
          asyncRequestsInFlight: stats.asyncInFlight
        }))
      }
    })

  const backend: Backend["Type"] = {
    kind: "stub",
    probe: Effect.succeed(stubDeviceInfo),
    compile,
    compileCount: Effect.sync(() => stats.compiles),
    compileLimit: limit,
    clientInfo: Effect.succeed(ClientInfo.make({ numAnes: 1, numCores: 16, architecture: "fake" })),
    beginRealTimeTask: handle(Effect.sync(() => ({
      eval: (model: BackendModel) =>
        Effect.zipRight(Effect.sync(() => { stats.realTimeEvals++ }), model.request.eval)
    }))),
    createSurface: (bytes) => handle(Effect.sync(() => ({ id: 7, bytes: new Uint8Array(bytes) }))),
    createSharedEvent: handle(Effect.gen(function*() {
      const value = yield* Ref.make(0n)
      const event: BackendSharedEvent = {
        port: eventPorts++,
        signaledValue: Ref.get(value),
        signal: (v) => Ref.set(value, v),
        wait: (v, timeoutMs) =>
          Effect.gen(function*() {
            const deadline = Date.now() + timeoutMs
            while (true) {
              if ((yield* Ref.get(value)) >= v) return true
              if (Date.now() >= deadline) return false
              yield* Effect.sleep(1)
            }
          })
      }
      return event
    })),
    liveHandles: Effect.sync(() => stats.live)
  }
  return { backend, stats, layer: Layer.succeed(Backend, backend) }
}
