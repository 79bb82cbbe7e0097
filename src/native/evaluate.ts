/**
 * Evaluation of a mapped request (spec/native-protocol.md §7.5–§7.6): the evaluate messages in order (the client's
 * direct evaluation first when answered), synchronously on the calling thread or on the library's eval threads
 * (./evalPool.ts); evaluation with perf stats (§13.2); locked CPU access to a request's surfaces.
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError } from "../schema/errors.js"
import type { EvalStats, ModelDiagnostics } from "../schema/Telemetry.js"
import type { BackendRequest } from "../services/Backend.js"
import { closed, native, type NativeEnv, Stop } from "./env.js"
import { nativeError } from "./errors.js"
import type { CallsOutcome, PoolCall } from "./evalPool.js"
import { type ErrorResult, type Id, nil, type Objc } from "./objc.js"
import type { Compiled } from "./requests.js"
import { clientModel, DIRECT_EVAL, type ModelState, type RequestState } from "./state.js"
import { withSurfaceLock } from "./surfaces.js"
import { attachPerfStats, probeDiagnostics, readEvalStats } from "./telemetry.js"

/** One evaluate message to try. */
export interface EvalCall {
  readonly receiver: Id
  readonly selector: string
  readonly signature: string
  readonly args: ReadonlyArray<bigint | number | boolean | null>
}

/**
 * The evaluate messages to try in order (§7.5): the client's direct evaluation first when preferred and answered,
 * then the model kind's own (QoS first on the in-memory model, last on the client).
 */
export const evaluateCalls = (m: ModelState, request: Id, options: Id, preferDirect: boolean): ReadonlyArray<EvalCall> => {
  const calls: Array<EvalCall> = []
  if (preferDirect && m.directEval) {
    calls.push({ receiver: m.client, selector: DIRECT_EVAL, signature: "bool(id,id,id,uint32,err)", args: [clientModel(m), options, request, m.qos] })
  }
  calls.push(
    m.kind === "mil"
      ? { receiver: m.model, selector: "evaluateWithQoS:options:request:error:", signature: "bool(uint32,id,id,err)", args: [m.qos, options, request] }
      : { receiver: m.client, selector: "evaluateWithModel:options:request:qos:error:", signature: "bool(id,id,id,uint32,err)", args: [m.model, options, request, m.qos] }
  )
  return calls
}

/** Tries `calls` in order synchronously; the first success, or the last failure with its selector. */
const runCalls = (rt: Objc, calls: ReadonlyArray<EvalCall>): { readonly result: ErrorResult; readonly selector: string } => {
  let last: { result: ErrorResult; selector: string } | undefined
  for (const call of calls) {
    last = { result: rt.sendError(call.receiver, call.selector, call.signature, ...call.args), selector: call.selector }
    if (last.result.ok) break
  }
  return last!
}

/**
 * Runs `calls` on an eval thread; `finish` runs once on the JS thread when the thread is through (also when the
 * waiting fiber was interrupted meanwhile), then the fiber resumes with its result. Interrupting before a thread
 * took the job withdraws it and runs `finish` at once.
 */
export const evaluateOnPool = (
  env: NativeEnv,
  calls: ReadonlyArray<EvalCall>,
  finish: () => void,
  toError: (outcome: Exclude<CallsOutcome, { readonly ok: true }>) => EvalError
): Effect.Effect<void, EvalError> =>
  Effect.async<void, EvalError>((resume) => {
    const poolCalls: Array<PoolCall> = calls.map((c) => {
      env.rt.announce(c.receiver, c.selector, c.signature)
      return { receiver: c.receiver, selector: c.selector, signature: c.signature, args: c.args }
    })
    const { cancel } = env.pool.submit(poolCalls, (outcome) => {
      finish()
      if (outcome === undefined) return
      resume(outcome.ok ? Effect.void : Effect.fail(toError(outcome)))
    })
    return Effect.sync(() => void cancel())
  })

/** The typed error of a failed pool evaluation. */
export const poolError = (op: string, model: string) => (o: Exclude<CallsOutcome, { readonly ok: true }>): EvalError =>
  "thrown" in o
    ? new EvalError({ op, model, hint: `evaluating on an eval thread: ${o.thrown}` })
    : nativeError("eval", op, model, o.selector, o.error)

/** `-validate` when the request answers it (§7.5 step 1); a NO is a typed EvalError. */
const checkValid = (env: NativeEnv, r: RequestState, op: string, id: string): void => {
  if (r.validates && !env.rt.bool(r.request, "validate")) throw new Stop(new EvalError({ op, model: id, hint: "request validation failed" }))
}

/**
 * The synchronous evaluation of §7.5 (validate, fresh options dictionary for MIL, the evaluate calls); throws a
 * {@link Stop} with the typed error. Runs inside a native section.
 */
const evaluateNow = (env: NativeEnv, c: Compiled, r: RequestState, op: string): void => {
  const rt = env.rt
  checkValid(env, r, op, c.id)
  // A fresh options dictionary per MIL evaluation; nil for packages (§7.5).
  const opts = c.state.kind === "mil" ? rt.mutableDictionary() : nil
  const { result, selector } = runCalls(rt, evaluateCalls(c.state, r.request, opts, true))
  rt.release(opts)
  if (!result.ok) throw new Stop(nativeError("eval", op, c.id, selector, result.error))
}

/** Synchronous evaluation of a mapped request (§7.5): validate, fresh options dictionary, evaluateWithQoS. */
export const evalSync = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    return native<void, EvalError, "eval">(env, "eval", op, c.id, "evaluating", () => evaluateNow(env, c, r, op))
  })

/**
 * §13.2 EvalWithStats: attaches one perf-stats object to the request on first use and keeps it (released with the
 * request), so later calls allocate nothing new natively; evaluates as {@link evalSync}; then reads the stats.
 * Attaching and reading are best effort and never fail the call.
 */
export const evalWithStats = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<EvalStats, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<EvalStats, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    return native<EvalStats, EvalError, "eval">(env, "eval", op, c.id, "evaluating with stats", () => {
      if (!r.perfStatsTried) {
        r.perfStatsTried = true
        r.perfStats = attachPerfStats(env.rt, r.request)
      }
      evaluateNow(env, c, r, op)
      return readEvalStats(env.rt, r.request)
    })
  })

/**
 * Evaluation on one of the library's eval threads (§7.6). The request cannot close while the call is pending
 * (close waits); interrupting withdraws a job no thread has taken, else only abandons the result. The options
 * dictionary is made and released on the JS thread; the NSError is read on the eval thread inside its pool.
 */
export const evalAsync = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    const rt = env.rt
    return native<Id, EvalError, "eval">(env, "eval", op, c.id, "preparing evaluation", () => {
      checkValid(env, r, op, c.id)
      return c.state.kind === "mil" ? rt.mutableDictionary() : nil
    }).pipe(
      Effect.flatMap((opts) => {
        r.begin()
        return evaluateOnPool(env, evaluateCalls(c.state, r.request, opts, true), () => {
          rt.autoreleasePool(() => rt.release(opts))
          r.end()
        }, poolError(op, c.id))
      })
    )
  })

/** §13.2 ProbeDiagnostics of the in-memory model (MIL) or the `_ANEModel` (package); ClosedError after close. */
export const diagnostics = (env: NativeEnv, c: Compiled): Effect.Effect<ModelDiagnostics, ClosedError> =>
  Effect.suspend(() => {
    if (c.state.closed) return Effect.fail(closed("BackendModel.probeDiagnostics", c.id))
    const m = c.state
    // Reads never throw (telemetry.ts); the pool only scopes the autoreleased answers.
    return Effect.sync(() => env.rt.autoreleasePool(() => probeDiagnostics(env.rt, m.model, m.kind === "mil" ? "ANEInMemoryModel" : "ANEModel")))
  })

/**
 * Locked CPU access to one of the request's surfaces ({@link BackendRequest.access}); an index outside the model's
 * tensors or a closed request throws (the services check both before calling).
 */
export const requestAccess = (env: NativeEnv, r: RequestState): NonNullable<BackendRequest["access"]> => (side, index, mode, f) => {
  const views = side === "input" ? r.inputs : r.outputs
  const surfaces = side === "input" ? r.inputSurfaces : r.outputSurfaces
  const view = views[index]
  const surface = surfaces[index]
  if (view === undefined || surface === undefined) throw new RangeError(`no ${side} surface ${index}`)
  if (r.closed) throw new Error(`the request of ${r.model.kind} model is closed`)
  return withSurfaceLock(env.rt, surface, mode, () => f(view))
}
