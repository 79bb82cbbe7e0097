/**
 * Shared-event evaluation of a package model's request (spec/native-protocol.md §9.2): signal/wait event objects,
 * a new request over the same surfaces carrying them, option keys looked up with dlsym (literal fallback), validate,
 * map, evaluate on an eval thread (a wait event may need the JS thread to signal it), then unmap. The request is
 * kept, not released, and the model is marked so close neither unloads nor releases it (§7.7, §14.3).
 */
import * as Effect from "effect/Effect"
import { ClosedError, EvalError, SharedEventRequiresPackageError } from "../schema/errors.js"
import type { BackendSharedEvent, SharedEventEval } from "../services/Backend.js"
import { native, type NativeEnv, Stop } from "./env.js"
import { nativeError } from "./errors.js"
import { evaluateCalls, evaluateOnPool, poolError } from "./evaluate.js"
import { type Id, nil } from "./objc.js"
import { type Compiled, ensureTransaction, makeRequest, REQUEST_9 } from "./requests.js"
import { mapWithFallback, type MapVia, type RequestState, unmapRequest } from "./state.js"

/** The native side of a shared event created by this backend. */
export interface NativeEventState {
  readonly event: Id
  readonly port: number
  closed: boolean
}

const nativeEvents = new WeakMap<BackendSharedEvent, NativeEventState>()

/** Records the native object behind a BackendSharedEvent, so shared-event evaluations can find it. */
export const registerEvent = (event: BackendSharedEvent, state: NativeEventState): void => {
  nativeEvents.set(event, state)
}

const SIGNAL = "signalEventWithValue:symbolIndex:eventType:sharedEvent:"
const WAIT = "waitEventWithValue:sharedEvent:"
const EVENTS = "sharedEventsWithSignalEvents:waitEvents:"

/** Shared-event evaluation (§9.2); see the module comment. */
export const evalWithEvents = (
  env: NativeEnv,
  c: Compiled,
  r: RequestState,
  spec: SharedEventEval
): Effect.Effect<void, EvalError | ClosedError | SharedEventRequiresPackageError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError | SharedEventRequiresPackageError> => {
    const op = "BackendRequest.evalWithSharedEvents"
    if (r.closed) return Effect.fail(new ClosedError({ op, resource: `model ${c.id}` }))
    if (c.state.kind !== "package") return Effect.fail(new SharedEventRequiresPackageError({ op, model: c.id }))
    const sides = [spec.wait, spec.signal]
    const states: Array<NativeEventState | undefined> = []
    for (const side of sides) {
      if (side === undefined) {
        states.push(undefined)
        continue
      }
      const state = nativeEvents.get(side.event)
      if (state === undefined) {
        return Effect.fail(new EvalError({ op, model: c.id, hint: "the shared event was not created by this hardware backend" }))
      }
      if (state.closed) return Effect.fail(new ClosedError({ op, resource: `shared event ${state.port}` }))
      states.push(state)
    }
    const rt = env.rt
    const m = c.state
    const held: Array<Id> = []
    let request: Id = nil
    let mapped = false
    let via: MapVia = "client"
    let cleaned = false
    const cleanup = () => {
      if (cleaned) return
      cleaned = true
      rt.autoreleasePool(() => {
        if (mapped) unmapRequest(m, request, via)
        // The request itself is kept: after a shared-event evaluation the Go package releases neither the model
        // nor the request, because releasing them crashed inside the framework (§14.3).
        if (request !== nil) env.keptAfterSharedEvents++
        for (const o of held) rt.release(o)
      })
    }
    const missing = (cls: string, selector: string) =>
      new Stop(new EvalError({ op, model: c.id, hint: `this framework's ${cls} does not answer ${selector}` }))
    const prepare = native<Id, EvalError, "eval">(env, "eval", op, c.id, "preparing a shared-event evaluation", () => {
      const classes = { signal: rt.cls("_ANESharedSignalEvent"), wait: rt.cls("_ANESharedWaitEvent"), events: rt.cls("_ANESharedEvents") }
      const [waitState, signalState] = states
      // Asked before anything is marked or built: an unanswered selector would end the process.
      if (signalState !== undefined && !rt.responds(classes.signal, SIGNAL)) throw missing("_ANESharedSignalEvent", SIGNAL)
      if (waitState !== undefined && !rt.responds(classes.wait, WAIT)) throw missing("_ANESharedWaitEvent", WAIT)
      if (!rt.responds(classes.events, EVENTS)) throw missing("_ANESharedEvents", EVENTS)
      if (!rt.responds(rt.cls("_ANERequest"), REQUEST_9)) throw missing("_ANERequest", REQUEST_9)
      m.sharedEventUsed = true
      const signals = rt.mutableArray()
      held.push(signals)
      const waits = rt.mutableArray()
      held.push(waits)
      if (spec.signal !== undefined && signalState !== undefined) {
        const symbol = c.layouts.outputs[0]?.symbolIndex ?? 0
        const signal = rt.id(classes.signal, SIGNAL, "id(uint64,uint32,int64,id)", spec.signal.value, symbol >= 0 ? symbol : 0, 5, signalState.event)
        if (signal === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedSignalEvent" }))
        rt.addObject(signals, signal)
      }
      if (spec.wait !== undefined && waitState !== undefined) {
        const wait = rt.id(classes.wait, WAIT, "id(uint64,id)", spec.wait.value, waitState.event)
        if (wait === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedWaitEvent" }))
        rt.addObject(waits, wait)
      }
      const events = rt.id(classes.events, EVENTS, "id(id,id)", signals, waits)
      if (events === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedEvents" }))
      held.push(rt.retain(events))
      const [inArr, inIdx, outArr, outIdx] = r.arrays
      const txn = rt.numberU64(1n)
      const created = makeRequest(rt, [inArr!, inIdx!, outArr!, outIdx!], events, txn)
      if (created === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create request with shared events" }))
      request = rt.retain(created)
      ensureTransaction(rt, request, txn)
      const options = rt.mutableDictionary()
      held.push(options)
      const flag = (symbol: string, on: boolean | undefined) => {
        if (!on) return
        const key = rt.constant(symbol)
        rt.setObjectForKeyObject(options, key !== nil ? key : rt.nsString(symbol), rt.numberBool(true))
      }
      flag("kANEFDisableIOFencesUseSharedEventsKey", spec.options?.disableIoFencesUseSharedEvents)
      flag("kANEFEnableFWToFWSignal", spec.options?.enableFwToFwSignal)
      if (rt.responds(request, "validate") && !rt.bool(request, "validate")) {
        throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
      }
      const map = mapWithFallback(m, request, false)
      if (!map.result.ok) throw new Stop(nativeError("eval", op, c.id, map.selector, map.result.error))
      mapped = true
      via = map.via
      return options
    })
    // Direct evaluation only when ANE_SHARED_USE_DIRECT is set, as §9.2 step 9 describes.
    const preferDirect = (process.env["ANE_SHARED_USE_DIRECT"] ?? "") !== ""
    return prepare.pipe(
      Effect.tapErrorCause(() => Effect.sync(cleanup)),
      Effect.flatMap((options) => {
        r.begin()
        // Cleanup waits for the native call even when the fiber was interrupted meanwhile.
        return evaluateOnPool(env, evaluateCalls(m, request, options, preferDirect), () => {
          cleanup()
          r.end()
        }, poolError(op, c.id))
      })
    )
  })
