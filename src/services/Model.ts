/** A compiled and loaded program: typed I/O over its surfaces and the ways to evaluate it. */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { CompileStats } from "../schema/CompileStats.js"
import type { ClosedError, EvalError, InvalidArgumentError, MapError, SharedEventRequiresPackageError } from "../schema/errors.js"
import type { SharedEventEvalOptions } from "../schema/SharedEventEvalOptions.js"
import type { EvalStats, EvalTelemetry, EventTiming, ModelDiagnostics } from "../schema/Telemetry.js"
import type { BackendCapabilities } from "./Backend.js"
import type { ModelInternals, ModelTypeId } from "./internal/model.js"
import type { TensorIO } from "./internal/io.js"
import type { SharedEvent } from "./SharedEvent.js"
import type { Surface } from "./Surface.js"

export type { SurfaceViews, TensorIO, TensorIOOf, TensorRef } from "./internal/io.js"

/** Inputs of {@link Exclusive.run} by name: one Float32Array of C×H×W elements per input, keyed by its name. */
export type NamedTensors = Readonly<Record<string, Float32Array>>

/** Flags of a shared-event evaluation: the schema class or a plain object of its fields. */
export type SharedEventOptions = SharedEventEvalOptions | {
  readonly disableIoFencesUseSharedEvents?: boolean
  readonly enableFwToFwSignal?: boolean
}

/** Options of {@link Exclusive.run}. */
export interface RunOptions {
  /** `"async"` (default): `evalAsync`, off the JS thread where the backend can; `"sync"`: `eval` on the calling thread. */
  readonly mode?: "sync" | "async"
}

/** Failures of {@link Exclusive.run}. */
export type RunError = InvalidArgumentError | EvalError | ClosedError

/**
 * Whole write→eval→read sequences on one request. Every single call on a request (each write, read and evaluation)
 * holds the request's lock while it runs, so calls never tear each other's data; a sequence of separate calls can
 * still interleave with another fiber's, and `run` and `use` are how to hold the request across one. To evaluate in
 * parallel, give each fiber a request of its own (`RequestPool`, `RequestPool.evalStream`).
 */
export interface Exclusive<Self> {
  /**
   * Writes every input, evaluates, and reads every output as a new Float32Array, holding the request for the whole
   * sequence. Interrupting it releases the request. Inputs come as an array in binding order (outputs are then an
   * array in binding order too) or as a record keyed by input name with every input present once (outputs are then a
   * record keyed by output name; an output without a name of its own is keyed by its index, `"0"`, `"1"`, …).
   */
  readonly run: {
    (inputs: ReadonlyArray<Float32Array>, options?: RunOptions): Effect.Effect<ReadonlyArray<Float32Array>, RunError>
    (inputs: NamedTensors, options?: RunOptions): Effect.Effect<NamedTensors, RunError>
  }
  /**
   * Runs `f` holding the request: other fibers' calls on it wait until `f` ends (or is interrupted), while calls
   * inside `f` on this same request, from `f`'s fiber or fibers it forks, go straight through.
   */
  readonly use: <A, E, R>(f: (self: Self) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** Failures of a shared-event evaluation. */
export type SharedEventEvalFailure = EvalError | ClosedError | InvalidArgumentError | SharedEventRequiresPackageError

/**
 * A compiled model, valid inside the scope it was compiled in. Closing that scope unmaps its surfaces and
 * unloads it; every call afterwards fails with ClosedError. Calls on it are serialised (see {@link Exclusive}).
 */
export interface Model extends TensorIO, Exclusive<Model> {
  /** @internal */
  readonly [ModelTypeId]: ModelInternals
  /** Stable identity used in errors, spans and metric tags. */
  readonly id: string
  readonly kind: "mil" | "package"
  readonly stats: CompileStats
  readonly capabilities: BackendCapabilities
  /** Evaluates synchronously on the calling thread (the cheapest path). */
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  /** Evaluates off the JS thread where the backend can; interrupting abandons the result. */
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  /**
   * Evaluates synchronously with the engine's performance statistics attached and returns them: execution time,
   * named counters, raw data. `source` says whether the time is the engine's own, the simulator's model, or missing.
   */
  readonly evalWithStats: Effect.Effect<EvalStats, EvalError | ClosedError>
  /** The model's queue and program state, as far as the backend reports it; absent fields were not reported. */
  readonly diagnostics: Effect.Effect<ModelDiagnostics, ClosedError>
  /** `stats` (from an earlier {@link Model.evalWithStats}; none by default) with fresh diagnostics; no evaluation. */
  readonly telemetry: (stats?: EvalStats) => Effect.Effect<EvalTelemetry, ClosedError>
  /** {@link Model.evalWithSignalEvent}, timed by the wall clock (enqueue and total are the same span here). */
  readonly evalWithSignalTiming: (
    event: SharedEvent,
    value: bigint,
    options?: SharedEventOptions
  ) => Effect.Effect<EventTiming, SharedEventEvalFailure>
  /** {@link Model.evalWithSignalTiming} with the model's diagnostics, as one telemetry value (no stats). */
  readonly telemetryWithSignal: (
    event: SharedEvent,
    value: bigint,
    options?: SharedEventOptions
  ) => Effect.Effect<EvalTelemetry, SharedEventEvalFailure>
  /** Evaluates, then has the engine signal `event` with `value`. */
  readonly evalWithSignalEvent: (
    event: SharedEvent,
    value: bigint,
    options?: SharedEventOptions
  ) => Effect.Effect<void, SharedEventEvalFailure>
  /**
   * A request of this model over standalone surfaces (one per input and output, each at least the layout's
   * `allocSize`): two models bound to one surface share it with no copy, one's output being the other's input.
   * Released when the scope closes; it fails with ClosedError once the model or any of its surfaces is closed.
   */
  readonly bindRequest: (surfaces: {
    readonly inputs: ReadonlyArray<Surface>
    readonly outputs: ReadonlyArray<Surface>
  }) => Effect.Effect<BoundRequest, InvalidArgumentError | MapError | ClosedError, Scope.Scope>
  /** Has the engine wait for `event` to reach `value` before evaluating. */
  readonly evalWithWaitEvent: (
    event: SharedEvent,
    value: bigint,
    options?: SharedEventOptions
  ) => Effect.Effect<void, SharedEventEvalFailure>
  /** Waits for `wait` to reach `waitValue`, evaluates, then signals `signal` with `signalValue`. */
  readonly evalBidirectional: (
    wait: SharedEvent,
    waitValue: bigint,
    signal: SharedEvent,
    signalValue: bigint,
    options?: SharedEventOptions
  ) => Effect.Effect<void, SharedEventEvalFailure>
}

/** A request over caller surfaces (see {@link Model.bindRequest}): typed I/O on them plus evaluation. */
export interface BoundRequest extends TensorIO, Exclusive<BoundRequest> {
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  readonly evalWithStats: Effect.Effect<EvalStats, EvalError | ClosedError>
}

/**
 * Per-evaluation spans (`Model.eval`, `Model.evalAsync`, …) are off by default: a span costs several µs on
 * effect 3, far above the eval hot-path budget. Provide `true` around `Ane.compile` to trace a model's evals.
 */
export class TraceEvals extends Context.Reference<TraceEvals>()("effect-ane/TraceEvals", {
  defaultValue: () => false
}) {}
