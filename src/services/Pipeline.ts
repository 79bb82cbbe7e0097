/**
 * ANE↔GPU pipelines (spec/native-protocol.md §10.2): one shared event seen by both the engine and the GPU, and a
 * counter whose every step is a value one side signals and the other waits for, so work passes between them with
 * no CPU round trip. Plus a Stream stage that runs ANE → GPU (→ ANE) per element with consecutive elements
 * overlapping.
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ClosedError, EvalError, InvalidArgumentError, MapError, MetalError } from "../schema/errors.js"
import * as internal from "./internal/pipeline.js"
import type { ComputePipeline, DispatchOptions, Extent, MetalDevice, MetalSharedEvent } from "./Metal.js"
import type { Model, SharedEventEvalFailure } from "./Model.js"
import type { SharedEvent } from "./SharedEvent.js"

/** An event pair and its counter (starting at 0); every step moves the counter forward. */
export interface Pipeline {
  readonly metal: MetalDevice
  /** The ANE-side event. */
  readonly aneEvent: SharedEvent
  /** Its Metal twin (same port). */
  readonly metalEvent: MetalSharedEvent
  /** The value last handed out. */
  readonly counter: Effect.Effect<bigint>
  /** `v = ++counter`; `model` evaluates and the engine signals `v` (for a GPU step to wait on). Returns `v`. */
  readonly aneToMetal: (model: Model) => Effect.Effect<bigint, SharedEventEvalFailure>
  /** `w = counter`; the engine waits until the GPU has signalled `w`, then evaluates `model`. Returns `w`. */
  readonly waitOnAne: (model: Model) => Effect.Effect<bigint, SharedEventEvalFailure>
  /** `w = counter`, `s = ++counter`; the engine waits for `w`, evaluates, and signals `s`. */
  readonly bidirectional: (model: Model) => Effect.Effect<{ readonly wait: bigint; readonly signal: bigint }, SharedEventEvalFailure>
  /**
   * A GPU step: `w = counter`, `s = ++counter`; the command buffer waits for `w`, runs `kernel`, signals `s`.
   * Completes when the GPU has; returns `s`.
   */
  readonly dispatch: (
    kernel: ComputePipeline,
    options: Omit<DispatchOptions, "wait" | "signal">
  ) => Effect.Effect<bigint, MetalError | ClosedError | InvalidArgumentError>
}

/** Makes a pipeline on `device`: a new shared event, its Metal twin, counter 0; released with the scope. */
export const make: (device: MetalDevice) => Effect.Effect<Pipeline, EvalError | MetalError | ClosedError, Scope.Scope> =
  internal.make

/** Most elements {@link stream} keeps in flight. */
export const MAX_STREAM_DEPTH = internal.MAX_STREAM_DEPTH

/** Options of {@link stream}. */
export interface StreamOptions {
  /** The ANE model each element's inputs go to. */
  readonly first: Model
  /**
   * The GPU kernel (compiled by the same device). Its buffers, in binding order: `first`'s outputs, then `next`'s
   * inputs; it reads the former and writes the latter (or rewrites `first`'s outputs when there is no `next`).
   */
  readonly kernel: ComputePipeline
  readonly grid: Extent
  readonly threadsPerThreadgroup?: Extent
  readonly params?: Uint8Array
  /** The ANE model after the GPU step; absent: the stream emits `first`'s outputs as the kernel left them. */
  readonly next?: Model
  /** Elements in flight, 1..16 (default 2: one element's GPU step overlaps the next one's ANE step). */
  readonly depth?: number
}

/** Failures of {@link stream} (plus the upstream's own). */
export type PipelineStreamError = SharedEventEvalFailure | MetalError | MapError

/**
 * A Stream stage: each element (one Float32Array per input of `first`, C×H×W each) runs `first` on the ANE, the
 * kernel on the GPU, then `next` on the ANE, handed on by shared events; it emits the last step's outputs, in
 * order. Every element in flight has its own requests, buffers and event pair; ending or interrupting the stream
 * releases them all.
 */
export const stream: (
  device: MetalDevice,
  options: StreamOptions
) => <E, R>(
  inputs: Stream.Stream<ReadonlyArray<Float32Array>, E, R>
) => Stream.Stream<ReadonlyArray<Float32Array>, E | PipelineStreamError, R> = internal.stream
