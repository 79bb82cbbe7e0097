/**
 * The GPU side of ANE↔GPU work (spec/native-protocol.md §9.4): the system default Metal device as a scoped
 * resource, Metal twins of shared events (same Mach port), no-copy buffers over a model's surfaces, and a minimal
 * compute path (one kernel, its buffers, a grid, a shared-event wait and signal). On the simulator a kernel is a
 * TypeScript function over the buffers' bytes, the stand-in for its Metal Shading Language source.
 */
import type * as Brand from "effect/Brand"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ClosedError, EvalError, InvalidArgumentError, MetalError, NoMetalError } from "../schema/errors.js"
import { Ane } from "./Ane.js"
import { Backend, type KernelArgs } from "./Backend.js"
import * as internal from "./internal/metal.js"
import type { Model } from "./Model.js"
import type { SharedEvent } from "./SharedEvent.js"
import type { Surface } from "./Surface.js"

export type { KernelArgs } from "./Backend.js"
/** Key of a device's backend objects. */
export { MetalTypeId } from "./internal/metal.js"

/**
 * A native object id (`MTLDevice`, `MTLSharedEvent`, `MTLBuffer`, `MTLComputePipelineState`) for callers who drive
 * Metal themselves, branded so one kind cannot pass for another. 0n where there is no native object (simulator,
 * stub). It is borrowed: valid while the value it came from is, never to be released by the caller.
 */
export type RawHandle<K extends string> = bigint & Brand.Brand<K>

/** A compute kernel: Metal Shading Language for hardware, a TypeScript function for the simulator, or both. */
export interface Kernel {
  /** The kernel function's name in `msl` (and the kernel's name in errors). */
  readonly name: string
  /** Metal Shading Language source holding a `kernel void <name>(…)`; buffers bind at indices 0…, params after. */
  readonly msl?: string
  /**
   * The simulator's stand-in for the kernel: runs once per dispatch over the whole grid, reading and writing the
   * buffers' bytes (typed views over them are free: `new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)`).
   */
  readonly simulate?: (args: KernelArgs) => void
}

/** Builds a {@link Kernel}; checked when compiled. */
export const kernel = (k: Kernel): Kernel => k

/** The Metal twin of an ANE shared event: the same u64 counter, seen from the GPU. */
export interface MetalSharedEvent {
  readonly port: number
  readonly raw: RawHandle<"MTLSharedEvent">
  /** The ANE-side event it twins (signals on either side are seen on both). */
  readonly aneEvent: SharedEvent
}

/** A new ANE shared event and its Metal twin, made together (`NewMetalSharedEvent`). */
export interface MetalSharedEventPair {
  readonly ane: SharedEvent
  readonly metal: MetalSharedEvent
}

/** A GPU buffer sharing memory with a surface (no copy); usable while it, its device and that surface are open. */
export interface MetalBuffer {
  /** Bytes (the surface's allocation size). */
  readonly length: number
  readonly raw: RawHandle<"MTLBuffer">
  /** The shared bytes themselves (zero copy; prefer the model's typed I/O). */
  readonly bytes: Effect.Effect<Uint8Array, ClosedError>
}

/** A compiled kernel. */
export interface ComputePipeline {
  readonly name: string
  readonly maxThreadsPerThreadgroup: number
  readonly raw: RawHandle<"MTLComputePipelineState">
}

/** 1 to 3 extents; missing ones are 1. */
export type Extent = number | readonly [number] | readonly [number, number] | readonly [number, number, number]

/** One dispatch of a kernel. */
export interface DispatchOptions {
  /** Buffers in binding order (`[[buffer(0)]]`, …). */
  readonly buffers: ReadonlyArray<MetalBuffer>
  /** Threads in the grid. */
  readonly grid: Extent
  /** Default: `min(maxThreadsPerThreadgroup, grid x)` × 1 × 1. */
  readonly threadsPerThreadgroup?: Extent
  /** Up to 4 KiB of constant bytes bound after the buffers (`setBytes:length:atIndex:`). */
  readonly params?: Uint8Array
  /** The command buffer waits until `event` reaches `value` before the kernel runs. */
  readonly wait?: { readonly event: MetalSharedEvent; readonly value: bigint }
  /** The command buffer signals `event` with `value` once the kernel has run. */
  readonly signal?: { readonly event: MetalSharedEvent; readonly value: bigint }
}

/** The GPU device; everything made from it is released with the scope it was made in. */
export interface MetalDevice {
  /** @internal */
  readonly [internal.MetalTypeId]: internal.DeviceInternals
  readonly name: string
  readonly raw: RawHandle<"MTLDevice">
  /** The Metal twin of `event` (`newSharedEventWithMachPort:` on its port). */
  readonly sharedEvent: (event: SharedEvent) => Effect.Effect<MetalSharedEvent, MetalError | ClosedError | InvalidArgumentError, Scope.Scope>
  /** A new ANE shared event and its twin. */
  readonly newSharedEvent: Effect.Effect<MetalSharedEventPair, EvalError | MetalError | ClosedError, Scope.Scope>
  /** A no-copy buffer over input `index` of `model`'s own request. */
  readonly inputBuffer: (model: Model, index: number) => Effect.Effect<MetalBuffer, MetalError | ClosedError | InvalidArgumentError, Scope.Scope>
  /** A no-copy buffer over output `index` of `model`'s own request. */
  readonly outputBuffer: (model: Model, index: number) => Effect.Effect<MetalBuffer, MetalError | ClosedError | InvalidArgumentError, Scope.Scope>
  /** A no-copy buffer over a standalone surface (bind it to models with `Model.bindRequest`). */
  readonly surfaceBuffer: (surface: Surface) => Effect.Effect<MetalBuffer, MetalError | ClosedError | InvalidArgumentError, Scope.Scope>
  /** Compiles a kernel; MetalError when this backend cannot run the forms it has (MSL only, on the simulator). */
  readonly compile: (kernel: Kernel) => Effect.Effect<ComputePipeline, MetalError | ClosedError | InvalidArgumentError, Scope.Scope>
  /** Runs one dispatch in its own command buffer and completes when the GPU has; interrupting abandons the wait. */
  readonly dispatch: (
    pipeline: ComputePipeline,
    options: DispatchOptions
  ) => Effect.Effect<void, MetalError | ClosedError | InvalidArgumentError>
}

/** Opens the GPU device of a Backend (for callers that build their own client). */
export const make: Effect.Effect<MetalDevice, NoMetalError, Backend | Scope.Scope> = Effect.flatMap(Backend, internal.open)

/**
 * Opens the system default GPU device of the current Ane client's backend: Metal on hardware, the simulated GPU on
 * the simulator, a GPU that does nothing on a stub. NoMetalError where there is none.
 */
export const open: Effect.Effect<MetalDevice, NoMetalError, Ane | Scope.Scope> = Effect.flatMap(Ane, (ane) => ane.openMetal)
