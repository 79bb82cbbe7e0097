/**
 * `IOSurfaceSharedEvent` behind the port's BackendSharedEvent (spec/native-protocol.md §9.1): `+new`, `-eventPort`,
 * `-signaledValue`, `-setSignaledValue:`, and `-waitUntilSignaledValue:timeoutMS:` in short slices on the library's
 * eval threads. These bindings are hand-written in the Go package (errata D4), so each selector is asked for with
 * `respondsToSelector:` first.
 */
import * as Effect from "effect/Effect"
import type { BackendSharedEvent } from "../services/Backend.js"
import { ClosedError, EvalError } from "../schema/errors.js"
import type { NativeEnv } from "./env.js"
import { type Id, nil } from "./objc.js"
import { registerEvent } from "./sharedEventEval.js"

/** Longest wait passed to the engine (one day); longer or infinite timeouts are clamped to it. */
export const MAX_WAIT_MS = 86_400_000

const WAIT = "waitUntilSignaledValue:timeoutMS:"
const SELECTORS = ["eventPort", "signaledValue", "setSignaledValue:", WAIT] as const

/** Creates a shared event (+1 from `+new`), released when the scope closes. */
export const sharedEvent = (env: NativeEnv) =>
  Effect.acquireRelease(
    Effect.try({
      try: () =>
        env.rt.autoreleasePool(() => {
          const rt = env.rt
          const cls = rt.cls("IOSurfaceSharedEvent")
          const event = cls !== nil && rt.responds(cls, "new") ? rt.id(cls, "new") : nil
          if (event === nil) throw new Error("+[IOSurfaceSharedEvent new] returned nil or is not answered")
          const missing = SELECTORS.find((s) => !rt.responds(event, s))
          if (missing !== undefined) {
            rt.release(event)
            throw new Error(`this IOSurfaceSharedEvent does not answer ${missing}`)
          }
          env.live++
          return { event, port: rt.int(event, "eventPort", "uint32()"), closed: false }
        }),
      catch: (cause) =>
        new EvalError({
          op: "Ane.createSharedEvent",
          model: "shared event",
          hint: `failed to create shared event: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause
        })
    }),
    (state) =>
      Effect.sync(() => {
        state.closed = true
        env.rt.autoreleasePool(() => env.rt.release(state.event))
        env.live--
      })
  ).pipe(Effect.map((state): BackendSharedEvent => {
    const rt = env.rt
    const closedError = (op: string) => new ClosedError({ op, resource: `shared event ${state.port}` })
    const live = <A>(op: string, f: (event: Id) => A): Effect.Effect<A, ClosedError> =>
      Effect.suspend(() => (state.closed ? Effect.fail(closedError(op)) : Effect.sync(() => rt.autoreleasePool(() => f(state.event)))))
    const event: BackendSharedEvent = {
      port: state.port,
      signaledValue: live("SharedEvent.signaledValue", (e) => BigInt(rt.send(e, "signaledValue", "uint64()") as bigint | number)),
      signal: (value) => live("SharedEvent.signal", (e) => void rt.send(e, "setSignaledValue:", "void(uint64)", value)),
      wait: (value, timeoutMs) =>
        Effect.suspend(() => {
          if (state.closed) return Effect.fail(closedError("SharedEvent.wait"))
          const ms = Number.isFinite(timeoutMs) ? Math.min(MAX_WAIT_MS, Math.max(0, Math.trunc(timeoutMs))) : MAX_WAIT_MS
          // The wait holds its own reference, so closing the scope meanwhile cannot free the event under it.
          const held = rt.autoreleasePool(() => rt.retain(state.event))
          rt.announce(held, WAIT, "bool(uint64,uint64)")
          return env.pool.wait(held, value, ms, () => rt.autoreleasePool(() => rt.release(held)))
        })
    }
    registerEvent(event, state)
    return event
  }))
