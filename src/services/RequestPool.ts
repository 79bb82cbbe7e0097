/**
 * A ring of extra mapped requests, each with its own surfaces, for overlapping evaluations of one model, and the
 * pipelined Stream evaluation built on it.
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ClosedError, EvalError, InvalidArgumentError, MapError } from "../schema/errors.js"
import type { EvalStats } from "../schema/Telemetry.js"
import type { TensorIO } from "./internal/io.js"
import * as internal from "./internal/pool.js"
import * as stream from "./internal/stream.js"
import type { Exclusive, Model, NamedTensors } from "./Model.js"

/** The engine's hardware queue limit: at most this many requests per pool (spec/native-protocol.md §10.1). */
export const MAX_DEPTH = 127

/** One request of a pool: typed I/O on its own surfaces plus evaluation. Held until the acquiring scope closes. */
export interface PooledRequest extends TensorIO, Exclusive<PooledRequest> {
  /** Position in the pool, 0-based. */
  readonly index: number
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  /** Evaluates synchronously and returns the engine's statistics for this request (see `Model.evalWithStats`). */
  readonly evalWithStats: Effect.Effect<EvalStats, EvalError | ClosedError>
}

/** A fixed set of requests handed out one caller at a time. */
export interface RequestPool {
  readonly size: number
  /** Borrows an idle request, waiting while all are busy; it returns to the pool when the scope closes. */
  readonly acquire: Effect.Effect<PooledRequest, ClosedError, Scope.Scope>
  /** Idle requests right now. */
  readonly available: Effect.Effect<number>
}

/** Failures of a streamed evaluation (plus the upstream's own). */
export type EvalStreamError = InvalidArgumentError | EvalError | ClosedError | MapError

/** Options of {@link evalStream}. */
export interface EvalStreamOptions {
  /** Evaluations in flight at once, 1..127 (each gets its own mapped request). */
  readonly depth: number
}

/**
 * Maps `size` (1..127) requests of `model`, each with its own surfaces; unmapped when the scope closes.
 */
export const make = (
  model: Model,
  size: number
): Effect.Effect<RequestPool, InvalidArgumentError | MapError | ClosedError, Scope.Scope> => internal.make(model, size)

/**
 * Pipelined evaluation: each element is one evaluation's inputs (one Float32Array per model input, C×H×W each),
 * each output element its outputs. Order is preserved, at most `depth` evaluations run at once, upstream is
 * pulled only as capacity frees up, and ending or interrupting the stream releases every in-flight request.
 */
export const evalStream: (
  model: Model,
  options: EvalStreamOptions
) => <E, R>(
  inputs: Stream.Stream<ReadonlyArray<Float32Array>, E, R>
) => Stream.Stream<ReadonlyArray<Float32Array>, E | EvalStreamError, R> = stream.evalStream

/**
 * {@link evalStream} by name: each element is a record of the model's inputs keyed by input name (every input once),
 * each output element a record keyed by output name (an output without a name of its own by its index, `"0"`, …),
 * as `model.run` takes and returns them. A record naming an unknown input, or missing one, fails the stream with an
 * `InvalidArgumentError` that names it.
 */
export const evalStreamNamed: (
  model: Model,
  options: EvalStreamOptions
) => <E, R>(
  inputs: Stream.Stream<NamedTensors, E, R>
) => Stream.Stream<NamedTensors, E | EvalStreamError, R> = stream.evalStreamNamed
