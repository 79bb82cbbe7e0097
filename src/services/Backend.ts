/**
 * The Backend port: the low-level contract the hardware driver and the CPU simulator both implement, and that a
 * test can stub. Nothing above this file knows which implementation it runs on.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { CompileOptions } from "../schema/CompileOptions.js"
import { CompileStats } from "../schema/CompileStats.js"
import { DeviceInfo, type BackendKind } from "../schema/DeviceInfo.js"
import {
  ClosedError,
  type CompileFailure,
  EvalError,
  InvalidArgumentError,
  type MapError,
  type MetalError,
  NoAneError,
  type NoMetalError,
  type SharedEventRequiresPackageError
} from "../schema/errors.js"
import type { SharedEventEvalOptions } from "../schema/SharedEventEvalOptions.js"
import { ClientInfo, EvalStats, ModelDiagnostics } from "../schema/Telemetry.js"
import { TensorLayout } from "../schema/TensorLayout.js"

/** A CPU↔engine synchronisation point (an `IOSurfaceSharedEvent` on hardware): a monotonically signalled u64. */
export interface BackendSharedEvent {
  /** Mach port name on hardware; a process-unique number elsewhere. */
  readonly port: number
  readonly signaledValue: Effect.Effect<bigint, ClosedError>
  /** CPU-side signal. */
  readonly signal: (value: bigint) => Effect.Effect<void, ClosedError>
  /** Blocks (off the JS thread where possible) until `value` is reached; false on timeout. */
  readonly wait: (value: bigint, timeoutMs: number) => Effect.Effect<boolean, ClosedError>
}

/** Which events a shared-event evaluation waits on before running and signals after. */
export interface SharedEventEval {
  readonly wait?: { readonly event: BackendSharedEvent; readonly value: bigint }
  readonly signal?: { readonly event: BackendSharedEvent; readonly value: bigint }
  readonly options?: SharedEventEvalOptions
}

/** One mapped request: its own input/output surfaces and the ways to evaluate it. */
export interface BackendRequest {
  /** Zero-copy byte views of the input surfaces, in the model's input order, each exactly `allocSize` long. */
  readonly inputs: ReadonlyArray<Uint8Array>
  /** Zero-copy byte views of the output surfaces, in output order. */
  readonly outputs: ReadonlyArray<Uint8Array>
  /** Synchronous evaluation on the calling thread. */
  readonly eval: Effect.Effect<void, EvalError | ClosedError>
  /** Evaluation off the JS thread; interrupting it abandons the result (the surfaces stay valid). */
  readonly evalAsync: Effect.Effect<void, EvalError | ClosedError>
  /** Evaluation bracketed by shared events. */
  readonly evalWithSharedEvents: (
    spec: SharedEventEval
  ) => Effect.Effect<void, EvalError | ClosedError | SharedEventRequiresPackageError>
  /**
   * Synchronous evaluation with a performance-stats object attached to this request (§13.2 EvalWithStats). The
   * object is made once per request and stays attached, so repeated calls allocate nothing new natively.
   */
  readonly evalWithStats: Effect.Effect<EvalStats, EvalError | ClosedError>
  /**
   * Runs `f` over one surface's view while the backend holds it locked for the CPU (`IOSurfaceLock` on hardware,
   * read-only for "read"); a raw view is valid only inside. Absent where memory needs no lock (simulator, stubs).
   */
  readonly access?: <A>(side: "input" | "output", index: number, mode: SurfaceAccessMode, f: (bytes: Uint8Array) => A) => A
}

/** How the CPU means to touch a surface: a read takes a read-only lock. */
export type SurfaceAccessMode = "read" | "write"

/** What a backend can do beyond the basics, so the services can refuse early with a typed error. */
export interface BackendCapabilities {
  /** `"package-only"`: shared-event evals are refused for in-memory MIL models (the conservative hardware rule). */
  readonly sharedEvents: "all" | "package-only" | "none"
  /** Whether `evalAsync` really leaves the JS thread (false: it is `eval` behind an async boundary). */
  readonly asyncEval: boolean
}

/** A compiled and loaded model. Valid until the scope it was compiled in closes. */
export interface BackendModel {
  /** Stable, human-readable identity for errors, spans and metrics (e.g. `mil:3f2a…` or the package path). */
  readonly id: string
  readonly kind: "mil" | "package"
  readonly inputs: ReadonlyArray<TensorLayout>
  readonly outputs: ReadonlyArray<TensorLayout>
  readonly stats: CompileStats
  readonly capabilities: BackendCapabilities
  /** The model's own request (request 0), mapped at compile time. */
  readonly request: BackendRequest
  /** Maps one more request with its own surfaces (pools, pipelines); unmapped when `Scope` closes. */
  readonly mapRequest: Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope>
  /**
   * Maps a request over caller-owned surfaces (one per input and output, each at least the layout's `allocSize`;
   * the caller checks that), so two models can share a surface with no copy. Unmapped when `Scope` closes; the
   * surfaces must outlive it.
   */
  readonly mapRequestOver: (surfaces: {
    readonly inputs: ReadonlyArray<BackendSurface>
    readonly outputs: ReadonlyArray<BackendSurface>
  }) => Effect.Effect<BackendRequest, MapError | ClosedError, Scope.Scope>
  /** Queue and program state as far as the backend reports it (§13.2 ProbeDiagnostics). */
  readonly probeDiagnostics: Effect.Effect<ModelDiagnostics, ClosedError>
  /** Pipelined I/O of a package model (§10.3); absent where the backend has none. */
  readonly pipelinedIO?: BackendPipelinedIO
  /** Prepares firmware chaining of a package model (§10.4); absent where the backend has none. */
  readonly prepareChain?: (links: ReadonlyArray<BackendChainLink>) => Effect.Effect<void, EvalError | ClosedError>
}

/** Pipelined I/O of one package model (spec/native-protocol.md §10.3); arguments arrive checked. */
export interface BackendPipelinedIO {
  /** `_ANEInputBuffersReady` for `procedure`, then `buffersReadyWithModel:…`. */
  readonly notifyInputsReady: (procedure: number) => Effect.Effect<void, EvalError | ClosedError>
  /** `_ANEOutputSetEnqueue` for `procedure`/`setIndex`/`signalValue`, then `enqueueSetsWithModel:…`. */
  readonly enqueueOutputSet: (
    procedure: number,
    setIndex: number,
    signalValue: bigint,
    openLoop: boolean
  ) => Effect.Effect<void, EvalError | ClosedError>
}

/** One link of a chaining request (§10.4); indices arrive checked against the model's bindings. */
export interface BackendChainLink {
  readonly procedureIndex: number
  readonly loopbackInputIndex: number
  readonly loopbackOutputIndex: number
  /** Firmware enqueue delay (u64). */
  readonly enqueueDelay: bigint
}

/** What a GPU kernel is to a backend: Metal Shading Language for hardware, a TypeScript stand-in for the simulator. */
export interface BackendKernel {
  /** The kernel function's name in `msl`, and the kernel's name in errors. */
  readonly name: string
  readonly msl?: string
  readonly simulate?: (args: KernelArgs) => void
}

/** What a simulated kernel receives: its buffers' bytes in binding order, the grid, and the parameter bytes. */
export interface KernelArgs {
  readonly buffers: ReadonlyArray<Uint8Array>
  readonly grid: readonly [number, number, number]
  readonly params: Uint8Array | undefined
}

/** The GPU twin of a shared event (an `MTLSharedEvent` made from the same Mach port on hardware). */
export interface BackendMetalEvent {
  readonly port: number
  /** The `MTLSharedEvent` id on hardware; 0n elsewhere. */
  readonly handle: bigint
}

/** A GPU buffer over surface memory (a no-copy `MTLBuffer` on hardware). */
export interface BackendMetalBuffer {
  /** The same memory as the surface view it was made over. */
  readonly bytes: Uint8Array
  /** The `MTLBuffer` id on hardware; 0n elsewhere. */
  readonly handle: bigint
}

/** A compiled kernel (an `MTLComputePipelineState` on hardware). */
export interface BackendComputePipeline {
  readonly name: string
  readonly maxThreadsPerThreadgroup: number
  /** The `MTLComputePipelineState` id on hardware; 0n elsewhere. */
  readonly handle: bigint
}

/** One compute dispatch: its own command buffer, optionally waiting on and signalling shared events. */
export interface BackendDispatch {
  readonly pipeline: BackendComputePipeline
  readonly buffers: ReadonlyArray<BackendMetalBuffer>
  readonly params?: Uint8Array
  readonly grid: readonly [number, number, number]
  readonly threadsPerThreadgroup: readonly [number, number, number]
  readonly wait?: { readonly event: BackendMetalEvent; readonly value: bigint }
  readonly signal?: { readonly event: BackendMetalEvent; readonly value: bigint }
}

/** The GPU as a backend sees it (the system default `MTLDevice` on hardware); arguments arrive checked. */
export interface BackendMetal {
  readonly name: string
  /** The `MTLDevice` id on hardware; 0n elsewhere. */
  readonly handle: bigint
  /** The GPU twin of `event`, on the same port; released with the scope. */
  readonly sharedEvent: (event: BackendSharedEvent) => Effect.Effect<BackendMetalEvent, MetalError, Scope.Scope>
  /** A no-copy buffer over `bytes`, a surface view of this backend; released with the scope. */
  readonly buffer: (bytes: Uint8Array) => Effect.Effect<BackendMetalBuffer, MetalError, Scope.Scope>
  /** Compiles `kernel`; MetalError when this backend cannot run its form (MSL on the simulator, say). */
  readonly compile: (kernel: BackendKernel) => Effect.Effect<BackendComputePipeline, MetalError, Scope.Scope>
  /** Encodes and commits one dispatch, completing when the GPU has; interrupting it abandons the wait. */
  readonly dispatch: (dispatch: BackendDispatch) => Effect.Effect<void, MetalError>
}

/**
 * A real-time task of the client (spec/native-protocol.md §14.5): while it is active, `eval` runs a model's own
 * request through the engine's real-time path. It ends when the scope it was begun in closes.
 */
export interface BackendRealTimeTask {
  /** Synchronous real-time evaluation of `model`'s request 0; ClosedError once the task or the model is closed. */
  readonly eval: (model: BackendModel) => Effect.Effect<void, EvalError | ClosedError>
}

/** A standalone surface (an IOSurface on hardware). */
export interface BackendSurface {
  readonly id: number
  readonly bytes: Uint8Array
  /** Runs `f` over `bytes` under the backend's CPU lock (see {@link BackendRequest.access}); absent: no lock needed. */
  readonly access?: <A>(mode: SurfaceAccessMode, f: (bytes: Uint8Array) => A) => A
}

/** The port itself. */
export class Backend extends Context.Tag("effect-ane/Backend")<Backend, {
  readonly kind: BackendKind
  readonly probe: Effect.Effect<DeviceInfo, NoAneError>
  /** Compiles, loads and maps; everything acquired is released when `Scope` closes, or at once on failure. */
  readonly compile: (options: CompileOptions) => Effect.Effect<BackendModel, CompileFailure, Scope.Scope>
  /** Compiles this client has spent against its budget. */
  readonly compileCount: Effect.Effect<number>
  /** The per-client compile budget (119 on the engine's daemon; configurable on the simulator). */
  readonly compileLimit: number
  readonly createSurface: (bytes: number) => Effect.Effect<BackendSurface, InvalidArgumentError | MapError, Scope.Scope>
  readonly createSharedEvent: Effect.Effect<BackendSharedEvent, EvalError, Scope.Scope>
  /** Native handles currently alive (models, requests, surfaces, events); zero after every scope closed. */
  readonly liveHandles: Effect.Effect<number>
  /** What the client negotiated with the engine (§13.2 ProbeClientInfo). */
  readonly clientInfo: Effect.Effect<ClientInfo, NoAneError>
  /** Begins a real-time task (`beginRealTimeTask`); it ends (`endRealTimeTask`) when `Scope` closes. */
  readonly beginRealTimeTask: Effect.Effect<BackendRealTimeTask, EvalError, Scope.Scope>
  /** Opens the GPU device, counted among `liveHandles` until `Scope` closes; absent: no Metal on this backend. */
  readonly openMetal?: Effect.Effect<BackendMetal, NoMetalError, Scope.Scope>
}>() {}

/** The DeviceInfo a stub reports unless told otherwise. */
export const stubDeviceInfo = DeviceInfo.make({
  hasAne: true,
  numCores: 16,
  architecture: "stub",
  product: "stub",
  buildVersion: "",
  isVm: false,
  numAnes: 1,
  subType: "",
  boardType: 0,
  internalBuild: false,
  backend: "stub"
})

const stubLayout = TensorLayout.packed({ channels: 1, height: 1, width: 32, elemSize: 2 })

/**
 * A zero-work stub model: one fp16 `[1,1,1,32]` input and output, evaluations that do nothing.
 * Tests override only what they care about through {@link layerNoop}.
 */
export const stubModel = (options: CompileOptions): BackendModel => {
  const request = (
    inputs: ReadonlyArray<Uint8Array> = [new Uint8Array(stubLayout.allocSize)],
    outputs: ReadonlyArray<Uint8Array> = [new Uint8Array(stubLayout.allocSize)]
  ): BackendRequest => ({
    inputs,
    outputs,
    eval: Effect.void,
    evalAsync: Effect.void,
    evalWithSharedEvents: () => Effect.void,
    evalWithStats: Effect.succeed(EvalStats.unavailable)
  })
  return {
    id: options._tag === "mil" ? "stub:mil" : `stub:${options.path}`,
    kind: options._tag,
    inputs: [stubLayout],
    outputs: [stubLayout],
    stats: CompileStats.empty,
    capabilities: { sharedEvents: "all", asyncEval: false },
    request: request(),
    mapRequest: Effect.sync(() => request()),
    mapRequestOver: (surfaces) =>
      Effect.sync(() => request(
        surfaces.inputs.map((x) => x.bytes.subarray(0, stubLayout.allocSize)),
        surfaces.outputs.map((x) => x.bytes.subarray(0, stubLayout.allocSize))
      )),
    probeDiagnostics: Effect.succeed(ModelDiagnostics.make({})),
    pipelinedIO: { notifyInputsReady: () => Effect.void, enqueueOutputSet: () => Effect.void },
    prepareChain: () => Effect.void
  }
}

/** A GPU that does nothing and succeeds: kernels compile and dispatch without running. */
export const stubMetal: BackendMetal = {
  name: "stub",
  handle: 0n,
  sharedEvent: (event) => Effect.succeed({ port: event.port, handle: 0n }),
  buffer: (bytes) => Effect.succeed({ bytes, handle: 0n }),
  compile: (kernel) => Effect.succeed({ name: kernel.name, maxThreadsPerThreadgroup: 1024, handle: 0n }),
  dispatch: () => Effect.void
}

/** A Backend that does nothing and succeeds; pass the members a test needs to control. */
export const layerNoop = (partial: Partial<Backend["Type"]> = {}): Layer.Layer<Backend> =>
  Layer.succeed(Backend, {
    kind: "stub",
    probe: Effect.succeed(stubDeviceInfo),
    compile: (options) => Effect.succeed(stubModel(options)),
    compileCount: Effect.succeed(0),
    compileLimit: 119,
    createSurface: (bytes) => Effect.succeed({ id: 1, bytes: new Uint8Array(bytes) }),
    createSharedEvent: Effect.succeed({
      port: 1,
      signaledValue: Effect.succeed(0n),
      signal: () => Effect.void,
      wait: () => Effect.succeed(true)
    }),
    liveHandles: Effect.succeed(0),
    clientInfo: Effect.succeed(ClientInfo.make({})),
    beginRealTimeTask: Effect.succeed({ eval: (model: BackendModel) => model.request.eval }),
    openMetal: Effect.succeed(stubMetal),
    ...partial
  })
