/**
 * What every part of the hardware backend shares: the loaded runtime, counters, the eval thread pool, and the one
 * way a synchronous native section runs (inside its own autorelease pool, typed failures only).
 */
import * as Effect from "effect/Effect"
import { ClosedError } from "../schema/errors.js"
import type { EvalPool } from "./evalPool.js"
import { type NativeStage, type StageErrors, thrownError } from "./errors.js"
import type { Id, Objc } from "./objc.js"

/** Shared state of one native backend instance. */
export interface NativeEnv {
  readonly rt: Objc
  /** Live native handles (models, requests, surfaces). */
  live: number
  /** Successful compiles so far. */
  compiles: number
  /**
   * Foundation's temporary directory (`NSTemporaryDirectory()`), where the in-memory compiler looks for
   * `<hex>/model.mil` when the model does not answer `localModelPath` (§4.3). Never `os.tmpdir()`.
   */
  readonly tempDir: () => string
  /** A folder the caller chose instead (`NativeOptions.tempDir`): `<it>/<hex>` is used whatever the model answers. */
  readonly tempDirOverride: (() => string) | undefined
  /** Pause before the single load retry (100 ms on hardware, §4.2 step 10). */
  readonly loadRetryMs: number
  /** The library's own threads for asynchronous evaluations and waits (./evalPool.ts). */
  readonly pool: EvalPool
  /** The backend's `_ANEClient` (§3 Open order, ./client.ts); nil when none can be had. Call inside a pool. */
  readonly client: () => Id
  /**
   * Objects deliberately never released after a shared-event evaluation of a package model: the model, its requests
   * and each shared-event request (§7.7, §14.3: unloading or releasing them crashed inside the framework). The
   * NativeBackend's `nativeStats` reports it.
   */
  keptAfterSharedEvents: number
}

/** Thrown inside a synchronous native section to fail with an already-typed error. */
export class Stop<E> {
  constructor(readonly error: E) {}
}

/** Runs `f` in an autorelease pool; a {@link Stop} becomes its error, any other throw a typed `stage` error. */
export const native = <A, E, S extends NativeStage>(env: NativeEnv, stage: S, op: string, model: string, what: string, f: () => A) =>
  Effect.try({
    try: () => env.rt.autoreleasePool(f),
    catch: (cause): E | StageErrors[S] => (cause instanceof Stop ? (cause.error as E) : thrownError(stage, op, model, what, cause))
  })

/** The ClosedError of a model used after its scope closed. */
export const closed = (op: string, id: string) => new ClosedError({ op, resource: `model ${id}` })
