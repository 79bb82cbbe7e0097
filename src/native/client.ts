/**
 * The backend's `_ANEClient` (spec/native-protocol.md §3 "Open", step 2): the first non-nil answer of
 * `+sharedPrivateConnection`, `+sharedConnection`, `+alloc` then `-initWithRestrictedAccessAllowed:` YES, `+new`.
 * Shared connections are +0 and process-wide (never released); a client from steps 3–4 is +1 and owned by the backend.
 */
import { type Id, nil, type Objc } from "./objc.js"

/** The acquisition step that produced a client, named by its deciding selector. */
export type ClientStep = "sharedPrivateConnection" | "sharedConnection" | "initWithRestrictedAccessAllowed:" | "new"

/** A client and how it was obtained; `owned` clients (steps 3–4) must be released once. */
export interface AcquiredClient {
  readonly client: Id
  readonly step: ClientStep
  readonly owned: boolean
}

/** The four attempts of §3, in order, as error hints list them. */
export const CLIENT_ATTEMPTS =
  "+[_ANEClient sharedPrivateConnection], +[_ANEClient sharedConnection], +[_ANEClient alloc] then " +
  "-initWithRestrictedAccessAllowed:YES, +[_ANEClient new]"

/** The hint of every "no client" error. */
export const NO_CLIENT_HINT = `no _ANEClient connection: tried ${CLIENT_ATTEMPTS}; each was unanswered or answered nil`

const INIT = "initWithRestrictedAccessAllowed:"

/**
 * Runs the §3 acquisition once; undefined when every step is unanswered or nil. Each selector is sent only after
 * `respondsToSelector:` said YES (an unanswered one would raise an Objective-C exception). Call it inside an
 * autorelease pool. When `-initWithRestrictedAccessAllowed:` answers nil the alloc'd object is not released: an init
 * that fails consumes its receiver (Objective-C convention; the fake frees it there).
 */
export const acquireClient = (rt: Objc): AcquiredClient | undefined => {
  const cls = rt.cls("_ANEClient")
  if (cls === nil) return undefined
  const classSend = (selector: string): Id => (rt.responds(cls, selector) ? rt.id(cls, selector) : nil)
  for (const step of ["sharedPrivateConnection", "sharedConnection"] as const) {
    const client = classSend(step)
    if (client !== nil) return { client, step, owned: false }
  }
  const allocated = classSend("alloc")
  if (allocated !== nil) {
    if (rt.responds(allocated, INIT)) {
      const client = rt.id(allocated, INIT, "id(bool)", true)
      if (client !== nil) return { client, step: INIT, owned: true }
    } else {
      // Never initialised, so never consumed: give the +1 from alloc back.
      rt.release(allocated)
    }
  }
  const made = classSend("new")
  return made !== nil ? { client: made, step: "new", owned: true } : undefined
}

/** The backend's client holder: acquired on first use (retried until one is found), released once by `close`. */
export interface ClientSlot {
  /** The client (nil when none could be had); call inside an autorelease pool. */
  readonly get: () => Id
  /** How the held client was obtained; undefined before one was found. */
  readonly acquired: () => AcquiredClient | undefined
  /** Releases an owned client once (shared ones are left alone); later `get`s find nothing. Never throws. */
  readonly close: () => void
}

/** A {@link ClientSlot} over a loaded runtime. */
export const clientSlot = (rt: Objc): ClientSlot => {
  let held: AcquiredClient | undefined
  let closed = false
  return {
    get: () => {
      if (closed) return nil
      if (held === undefined) held = acquireClient(rt)
      return held?.client ?? nil
    },
    acquired: () => held,
    close: () => {
      if (closed) return
      closed = true
      const owned = held?.owned === true ? held.client : nil
      held = undefined
      if (owned === nil) return
      try {
        rt.autoreleasePool(() => rt.release(owned))
      } catch {
        // A finalizer cannot fail; a throw here means the FFI layer itself is gone.
      }
    }
  }
}
