/**
 * The Backend behind `Ane.layerStub`: models of the shapes a test declares, whose evaluation runs the test's own
 * function over the inputs, with live-handle counting and working shared events. @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { CompileOptions } from "../../schema/CompileOptions.js"
import { CompileStats } from "../../schema/CompileStats.js"
import { type CompileFailure, CompileError, EvalError, isAneError } from "../../schema/errors.js"
import { ClientInfo, EvalStats, ModelDiagnostics } from "../../schema/Telemetry.js"
import { TensorLayout } from "../../schema/TensorLayout.js"
import type { StubModel, StubOptions, StubTensor } from "../Ane.js"
import {
  type Backend,
  type BackendModel,
  type BackendRequest,
  type BackendSharedEvent,
  type SharedEventEval,
  stubDeviceInfo
} from "../Backend.js"
import { readF32, writeF32 } from "./codec.js"
import { describe, invalid } from "./errors.js"

const OP = "Ane.compile"
/** Largest stub tensor: far above any test's need, far below an allocation that could take the process down. */
const MAX_STUB_TENSOR_BYTES = 256 * 1024 * 1024

const isPositiveInt = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 1

/** The layout of one declared tensor, or the InvalidArgumentError naming what is wrong with it. */
const layoutOf = (where: string, t: StubTensor | undefined) => {
  const shape = (t as Partial<StubTensor> | undefined)?.shape
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 4 || !shape.every(isPositiveInt)) {
    return invalid(OP, `${where}.shape`, "1 to 4 positive integers, [1, C, H, W] or its trailing dims", describe(shape))
  }
  if (shape.length === 4 && shape[0] !== 1) {
    return invalid(OP, `${where}.shape`, "a batch dimension of 1 ([1, C, H, W])", `[${shape.join(", ")}]`)
  }
  const [c, h, w] = [...[1, 1, 1], ...shape].slice(-3) as [number, number, number]
  const dtype = t!.dtype ?? "fp16"
  if (dtype !== "fp16" && dtype !== "fp32") return invalid(OP, `${where}.dtype`, `"fp16" or "fp32"`, describe(dtype))
  const name = t!.name ?? ""
  if (typeof name !== "string") return invalid(OP, `${where}.name`, "a string", describe(name))
  const layout = TensorLayout.packed({ channels: c, height: h, width: w, elemSize: dtype === "fp16" ? 2 : 4 }, { name })
  if (layout.allocSize > MAX_STUB_TENSOR_BYTES) {
    return invalid(OP, `${where}.shape`, `at most ${MAX_STUB_TENSOR_BYTES} bytes per tensor`, `${layout.allocSize} bytes`)
  }
  return layout
}

const keyOf = (o: CompileOptions) => o._tag === "mil" ? "in-memory MIL program" : o.path

/** The stub a compile gets: by function, by package path or its last segment, else the `"*"` entry. */
const pick = (options: StubOptions, o: CompileOptions): StubModel | CompileFailure | undefined => {
  const models = options.models
  if (typeof models === "function") return models(o)
  const table = models as Readonly<Record<string, StubModel | CompileFailure>>
  if (o._tag === "package") {
    const trimmed = o.path.replace(/\/+$/, "")
    const base = trimmed.slice(trimmed.lastIndexOf("/") + 1)
    for (const k of [o.path, trimmed, base]) if (Object.hasOwn(table, k)) return table[k]
  }
  return Object.hasOwn(table, "*") ? table["*"] : undefined
}

const evalError = (model: string, hint: string, cause?: unknown) =>
  new EvalError(cause === undefined ? { op: "eval", model, hint } : { op: "eval", model, hint, cause })

/** Runs the stub's function over one request's surfaces. */
const evaluator = (
  id: string,
  spec: StubModel,
  inputs: ReadonlyArray<TensorLayout>,
  outputs: ReadonlyArray<TensorLayout>,
  ins: ReadonlyArray<Uint8Array>,
  outs: ReadonlyArray<Uint8Array>
): Effect.Effect<void, EvalError> => {
  const fn = spec.eval
  if (fn === undefined) return Effect.void
  return Effect.suspend(() => {
    const xs = inputs.map((l, i) => {
      const x = new Float32Array(l.logicalElements)
      readF32(ins[i]!, l, x)
      return x
    })
    let result: ReturnType<NonNullable<StubModel["eval"]>>
    try {
      result = fn(xs)
    } catch (e) {
      return Effect.fail(evalError(id, "the stub's eval function threw", e))
    }
    return Effect.flatMap(Effect.isEffect(result) ? result : Effect.succeed(result), (ys) => {
      if (!Array.isArray(ys) || ys.length !== outputs.length) {
        return Effect.fail(evalError(id, `the stub's eval function returned ${describe(ys)}, expected an array of ` +
          `${outputs.length} Float32Arrays (one per output)`))
      }
      for (let i = 0; i < outputs.length; i++) {
        const y: unknown = ys[i]
        const n = outputs[i]!.logicalElements
        if (!(y instanceof Float32Array) || y.length !== n) {
          return Effect.fail(evalError(id, `the stub's eval function returned ${describe(y)} for output ${i}, ` +
            `expected a Float32Array of ${n} elements`))
        }
      }
      for (let i = 0; i < outputs.length; i++) writeF32(ys[i]!, outs[i]!, outputs[i]!)
      return Effect.void
    })
  })
}

/**
 * The members of a Backend whose compiles return the stub models `options` declares (the rest come from
 * `Backend.layerNoop`). @internal
 */
export const make = (options: StubOptions) => {
  let live = 0
  let compiles = 0
  let nextId = 1
  const limit = options.compileLimit ?? 119
  const handle = <A, E>(acquire: Effect.Effect<A, E>): Effect.Effect<A, E, Scope.Scope> =>
    Effect.acquireRelease(Effect.tap(acquire, () => { live++ }), () => Effect.sync(() => { live-- }))

  const compile = (o: CompileOptions) =>
    Effect.gen(function*() {
      const picked = pick(options, o)
      if (picked === undefined) {
        return yield* new CompileError({
          op: OP, model: keyOf(o), diagnostics: [],
          hint: `no stub model for ${keyOf(o)}: add it to Ane.layerStub({ models }) (by path, file name or "*")`
        })
      }
      if (isAneError(picked)) return yield* Effect.fail(picked)
      const spec = picked as StubModel
      const layouts: Array<Array<TensorLayout>> = [[], []]
      for (const [k, side] of (["inputs", "outputs"] as const).entries()) {
        const list = (spec as Partial<StubModel> | undefined)?.[side]
        if (!Array.isArray(list)) return yield* invalid(OP, `stub model ${side}`, "an array of tensors", describe(list))
        for (let i = 0; i < list.length; i++) {
          const l = layoutOf(`stub model ${side}[${i}]`, list[i])
          if (!(l instanceof TensorLayout)) return yield* l
          layouts[k]!.push(l)
        }
      }
      if (spec.eval !== undefined && typeof spec.eval !== "function") {
        return yield* invalid(OP, "stub model eval", "a function of the inputs", describe(spec.eval))
      }
      const [inputs, outputs] = layouts as [Array<TensorLayout>, Array<TensorLayout>]
      const id = spec.id ?? (o._tag === "mil" ? `stub:mil:${nextId++}` : `stub:${o.path}`)
      compiles++
      yield* handle(Effect.void)
      let asyncInFlight = 0
      const request = (
        ins: ReadonlyArray<Uint8Array> = inputs.map((l) => new Uint8Array(l.allocSize)),
        outs: ReadonlyArray<Uint8Array> = outputs.map((l) => new Uint8Array(l.allocSize))
      ): BackendRequest => {
        const run = evaluator(id, spec, inputs, outputs, ins, outs)
        return {
          inputs: ins,
          outputs: outs,
          eval: run,
          // One turn of the scheduler, so other fibers run while an evaluation is "in flight".
          evalAsync: Effect.suspend(() => {
            asyncInFlight++
            return Effect.ensuring(Effect.zipRight(Effect.yieldNow(), run), Effect.sync(() => { asyncInFlight-- }))
          }),
          evalWithSharedEvents: (s: SharedEventEval) =>
            Effect.gen(function*() {
              if (s.wait && !(yield* s.wait.event.wait(s.wait.value, 10_000))) {
                return yield* evalError(id, `the wait event never reached ${s.wait.value}`)
              }
              yield* run
              if (s.signal) yield* s.signal.event.signal(s.signal.value)
            }),
          evalWithStats: Effect.as(run, EvalStats.unavailable)
        }
      }
      const model: BackendModel = {
        id,
        kind: o._tag,
        inputs,
        outputs,
        stats: CompileStats.empty,
        capabilities: { sharedEvents: "all", asyncEval: false },
        request: yield* handle(Effect.sync(() => request())),
        mapRequest: handle(Effect.sync(() => request())),
        mapRequestOver: (s) =>
          handle(Effect.sync(() =>
            request(
              s.inputs.map((x, i) => x.bytes.subarray(0, inputs[i]!.allocSize)),
              s.outputs.map((x, i) => x.bytes.subarray(0, outputs[i]!.allocSize))
            )
          )),
        probeDiagnostics: Effect.sync(() => ModelDiagnostics.make({ programClass: "StubModel", asyncRequestsInFlight: asyncInFlight }))
      }
      return model
    })

  let nextSurface = 1
  let nextPort = 1
  const members = {
    kind: "stub",
    probe: Effect.succeed(stubDeviceInfo),
    compile,
    compileCount: Effect.sync(() => compiles),
    compileLimit: limit,
    createSurface: (bytes) => handle(Effect.sync(() => ({ id: nextSurface++, bytes: new Uint8Array(bytes) }))),
    createSharedEvent: handle(Effect.sync((): BackendSharedEvent => {
      let value = 0n
      return {
        port: nextPort++,
        signaledValue: Effect.sync(() => value),
        signal: (v) => Effect.sync(() => { value = v }),
        wait: (v, timeoutMs) =>
          Effect.gen(function*() {
            const deadline = Date.now() + timeoutMs
            while (value < v) {
              if (Date.now() >= deadline) return false
              yield* Effect.sleep(1)
            }
            return true
          })
      }
    })),
    liveHandles: Effect.sync(() => live),
    clientInfo: Effect.succeed(ClientInfo.make({})),
    beginRealTimeTask: handle(Effect.succeed({ eval: (model: BackendModel) => model.request.eval }))
  } satisfies Partial<Backend["Type"]>
  return members
}
