/** Standalone shared-memory surfaces (IOSurfaces on hardware) as scoped resources. */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ClosedError, InvalidArgumentError, MapError } from "../schema/errors.js"
import { Ane } from "./Ane.js"
import type { BackendSurface } from "./Backend.js"
import { SurfaceTypeId } from "./internal/sharedEvent.js"

export { SurfaceTypeId } from "./internal/sharedEvent.js"

/** A byte surface the CPU and the engine can both see; released when its scope closes. */
export interface Surface {
  /** @internal */
  readonly [SurfaceTypeId]: { readonly surface: BackendSurface; readonly isClosed: () => boolean }
  /** Backend identity (IOSurfaceID on hardware). */
  readonly id: number
  /** Size in bytes. */
  readonly size: number
  /** The zero-copy view; valid only until the scope closes (prefer `write`/`read`). */
  readonly bytes: Effect.Effect<Uint8Array, ClosedError>
  /** Copies `data` in at `offset` (default 0); the range must fit. */
  readonly write: (data: Uint8Array, offset?: number) => Effect.Effect<void, ClosedError | InvalidArgumentError>
  /** A copy of `length` bytes from `offset` (default: the whole surface). */
  readonly read: (offset?: number, length?: number) => Effect.Effect<Uint8Array, ClosedError | InvalidArgumentError>
}

/** Creates a surface of `bytes` bytes through the current Ane client; released when the scope closes. */
export const make = (bytes: number): Effect.Effect<Surface, InvalidArgumentError | MapError, Ane | Scope.Scope> =>
  Effect.flatMap(Ane, (ane) => ane.createSurface(bytes))
