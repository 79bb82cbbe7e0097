/** CPU↔engine synchronisation points (IOSurfaceSharedEvent on hardware) as scoped resources. */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ClosedError, EvalError, InvalidArgumentError } from "../schema/errors.js"
import { Ane } from "./Ane.js"
import type { BackendSharedEvent } from "./Backend.js"
import { SharedEventTypeId } from "./internal/sharedEvent.js"

/** Key under which a SharedEvent carries its backend object. */
export { SharedEventTypeId } from "./internal/sharedEvent.js"

/** A monotonically signalled u64 counter shared between the CPU and the engine; released with its scope. */
export interface SharedEvent {
  /** @internal the backend object, for shared-event evaluations. */
  readonly [SharedEventTypeId]: { readonly event: BackendSharedEvent; readonly isClosed: () => boolean }
  /** Mach port name on hardware; a process-unique number elsewhere. */
  readonly port: number
  /** The last value signalled. */
  readonly signaledValue: Effect.Effect<bigint, ClosedError>
  /** Signals `value` from the CPU (`0 ≤ value < 2^64`). */
  readonly signal: (value: bigint) => Effect.Effect<void, ClosedError | InvalidArgumentError>
  /** Waits until `value` is reached; `false` when `timeout` elapses first. */
  readonly wait: (value: bigint, timeout: Duration.DurationInput) => Effect.Effect<boolean, ClosedError | InvalidArgumentError>
}

/** Creates a shared event through the current Ane client; released when the scope closes. */
export const make: Effect.Effect<SharedEvent, EvalError, Ane | Scope.Scope> = Effect.flatMap(Ane, (ane) => ane.createSharedEvent)
