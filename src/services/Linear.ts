/**
 * The static-weight linear executor (spec/mil-format.md §4.1): `y = x·wᵀ` on the engine, with the weights baked
 * into a compiled program that is cached by shape and weight content for the life of a scope.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ClosedError, CompileFailure, EvalError, InvalidArgumentError } from "../schema/errors.js"
import type { EvalStats } from "../schema/Telemetry.js"
import type { Ane } from "./Ane.js"
import * as dynamic from "./internal/dynamicLinear.js"
import * as internal from "./internal/linear.js"

/** Shape of one call: `batch` rows of `inDim` features in, `outDim` features out. */
export interface LinearSizes {
  /** Rows of x and y; the program's spatial width S. */
  readonly batch: number
  readonly inDim: number
  readonly outDim: number
}

/** What one call did: whether it compiled a new program, and the eval's execution time and where it came from. */
export interface LinearCallStats {
  /** True when this call compiled the kernel it used (false on a cache hit, including a lost compile race). */
  readonly compiled: boolean
  /** The evaluation's execution time in ns, as `Model.evalWithStats` reports it. */
  readonly hwExecutionNs: number
  /** Where `hwExecutionNs` comes from (see `EvalStats.source`). */
  readonly source: EvalStats["source"]
}

/** Counters of an executor; `compiles` and `cacheHits` keep counting after close, `kernels` drops to 0. */
export interface LinearStats {
  /** Kernels compiled and cached (a compile that lost a race is not counted here). */
  readonly compiles: number
  /** Calls that found their kernel cached, plus the losers of compile races. */
  readonly cacheHits: number
  /** Kernels cached now. */
  readonly kernels: number
}

/** Everything a linear call can fail with. */
export type LinearError = CompileFailure | EvalError | ClosedError

/**
 * A static-weight linear executor. Every new (shape, weights) pair compiles and caches a new program, spending one
 * unit of the client's compile budget (about 119 per process on the engine); nothing is evicted before the scope
 * closes, so it suits a fixed set of layers, not weights that change per call.
 */
export interface LinearExecutor {
  /**
   * `y = x·wᵀ`: x row-major [batch, inDim], w row-major [outDim, inDim] (PyTorch `nn.Linear.weight`), y row-major
   * [batch, outDim]; no bias. Computed in fp16 on the engine.
   */
  readonly linear: (x: Float32Array, w: Float32Array, sizes: LinearSizes) => Effect.Effect<Float32Array, LinearError>
  /** Same as `linear`, with the call's statistics. */
  readonly linearWithStats: (
    x: Float32Array,
    w: Float32Array,
    sizes: LinearSizes
  ) => Effect.Effect<{ readonly y: Float32Array; readonly stats: LinearCallStats }, LinearError>
  /** Same as `linearWithStats`, writing y into `dst` (exactly batch·outDim floats); allocates no result. */
  readonly linearInto: (
    dst: Float32Array,
    x: Float32Array,
    w: Float32Array,
    sizes: LinearSizes
  ) => Effect.Effect<LinearCallStats, LinearError>
  /** Compiles and caches the kernel for (sizes, w) without evaluating; a no-op when it is cached. */
  readonly prepare: (w: Float32Array, sizes: LinearSizes) => Effect.Effect<void, CompileFailure | ClosedError>
  /**
   * The kernel for (sizes, w), compiled or found once, as a layer that evaluates without hashing `w` again: for a
   * fixed layer called many times (hashing a large matrix costs far more than the evaluation). Later changes to
   * `w` do not reach the kernel.
   */
  readonly bind: (w: Float32Array, sizes: LinearSizes) => Effect.Effect<BoundLinear, CompileFailure | ClosedError>
  /** The executor's counters. */
  readonly stats: Effect.Effect<LinearStats>
}

/** One cached kernel of a {@link LinearExecutor}, called without re-hashing its weights. */
export interface BoundLinear {
  readonly sizes: LinearSizes
  /** `y = x·wᵀ` for the bound w; x row-major [batch, inDim]. */
  readonly linear: (x: Float32Array) => Effect.Effect<Float32Array, EvalError | ClosedError | InvalidArgumentError>
  /** Same, into `dst` (batch·outDim floats), with the call's statistics (`compiled` is always false). */
  readonly linearInto: (
    dst: Float32Array,
    x: Float32Array
  ) => Effect.Effect<LinearCallStats, EvalError | ClosedError | InvalidArgumentError>
}

/** Executor options. */
export interface LinearOptions {
  /** Darwin QoS class for the compiled programs; 0 or absent means 21 (the default class). */
  readonly qos?: number
}

/** The executor as a service, for programs that take it from context. */
export class Linear extends Context.Tag("effect-ane/Linear")<Linear, LinearExecutor>() {}

/**
 * Builds an executor over the Ane client in context. Its kernels live until the scope closes; closing the scope
 * unloads them all, and every call afterwards fails with ClosedError. A bad `qos` fails the first compile with
 * InvalidArgumentError.
 */
export const make = (options: LinearOptions = {}): Effect.Effect<LinearExecutor, never, Ane | Scope.Scope> =>
  internal.make(options)

/** The executor as a layer over an Ane layer. */
export const layer = (options: LinearOptions = {}): Layer.Layer<Linear, never, Ane> =>
  Layer.scoped(Linear, make(options))

/** FNV-1a-64 of the weights' IEEE-754 bit patterns, 4 little-endian bytes per float, as unpadded lowercase hex. */
export const weightHash: (w: Float32Array) => string = internal.weightHash

/** The cache key of a kernel: `"<batch>:<inDim>:<outDim>:<weightHash(w)>"` (spec/mil-format.md §4.1). */
export const cacheKey: (w: Float32Array, sizes: LinearSizes) => string = internal.cacheKey

/** What one dynamic call did: whether it compiled its shape's program, and the time summed over tiles. */
export interface DynamicLinearCallStats {
  readonly compiled: boolean
  /** The engine's execution time summed over tiles (wall-clock time for tiles the engine gave none). */
  readonly executionNs: number
  readonly wallClockTiles: number
}

/** Everything a dynamic linear call can fail with. */
export type DynamicLinearError = CompileFailure | EvalError | ClosedError | InvalidArgumentError

/**
 * A linear executor whose weights change without recompiling (spec/mil-format.md §4.2): one `DynamicMatmul` per
 * shape, compiled on first use and cached until the scope closes. Calls on one shape are serialised.
 */
export interface DynamicLinearExecutor {
  /** `y = x·wᵀ` with w row-major [outDim, inDim] (PyTorch layout), transposed into a per-shape scratch. */
  readonly linear: (x: Float32Array, w: Float32Array, sizes: LinearSizes) => Effect.Effect<Float32Array, DynamicLinearError>
  readonly linearWithStats: (
    x: Float32Array,
    w: Float32Array,
    sizes: LinearSizes
  ) => Effect.Effect<{ readonly y: Float32Array; readonly stats: DynamicLinearCallStats }, DynamicLinearError>
  readonly linearInto: (
    dst: Float32Array,
    x: Float32Array,
    w: Float32Array,
    sizes: LinearSizes
  ) => Effect.Effect<DynamicLinearCallStats, DynamicLinearError>
  /** The fast path: weights already in IO layout, row-major [inDim, outDim]. */
  readonly linearIOInto: (
    dst: Float32Array,
    x: Float32Array,
    wIO: Float32Array,
    sizes: LinearSizes
  ) => Effect.Effect<DynamicLinearCallStats, DynamicLinearError>
  /** Writes IO-layout weights into the shape's surfaces for the one-hot path. */
  readonly primeWeightsIO: (wIO: Float32Array, sizes: LinearSizes) => Effect.Effect<void, DynamicLinearError>
  /** Rewrites only rows `rows` (input features) of the primed weights. */
  readonly updateWeightsIORows: (
    wIO: Float32Array,
    rows: ReadonlyArray<number>,
    sizes: LinearSizes
  ) => Effect.Effect<void, DynamicLinearError>
  /** Row t of the result is weight row `xs[t]` (see `DynamicMatmul.evalOneHotInto`); needs primed weights. */
  readonly linearOneHotIOInto: (
    dst: Float32Array,
    xs: ReadonlyArray<number>,
    sizes: LinearSizes
  ) => Effect.Effect<DynamicLinearCallStats, DynamicLinearError>
  /** Compiles and caches the shape's program without evaluating. */
  readonly prepare: (sizes: LinearSizes) => Effect.Effect<void, DynamicLinearError>
  /** Counters: programs compiled (one per shape), cache hits, shapes cached now. */
  readonly stats: Effect.Effect<LinearStats>
}

/** Dynamic executor options. */
export interface DynamicLinearOptions extends LinearOptions {
  /** Output columns per tile (see `DynamicMatmul`); absent: full width with fallback. */
  readonly tileOut?: number
}

/** Builds a dynamic executor over the Ane client in context; its programs are unloaded when the scope closes. */
export const makeDynamic = (
  options: DynamicLinearOptions = {}
): Effect.Effect<DynamicLinearExecutor, never, Ane | Scope.Scope> => dynamic.makeDynamic(options)
