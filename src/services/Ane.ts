/** The ANE client service: device info, compiling programs into scoped Models, surfaces, shared events. */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as NativeBackend from "../native/NativeBackend.js"
import type { CompileOptions } from "../schema/CompileOptions.js"
import type { CompileStats } from "../schema/CompileStats.js"
import type { DeviceInfo } from "../schema/DeviceInfo.js"
import type {
  ClosedError, CompileFailure, EvalError, InvalidArgumentError, MapError, NoAneError, NoMetalError
} from "../schema/errors.js"
import type { ClientInfo, ClientSnapshot } from "../schema/Telemetry.js"
import * as SimBackend from "../sim/SimBackend.js"
import { Backend, layerNoop as backendNoop } from "./Backend.js"
import * as internal from "./internal/ane.js"
import * as stub from "./internal/stub.js"
import type { MetalDevice } from "./Metal.js"
import type { Model } from "./Model.js"
import type { SharedEvent } from "./SharedEvent.js"
import type { Surface } from "./Surface.js"

/** What the Ane client can do. */
export interface AneService {
  /** What the engine (or the simulator standing in for it) reports, including which backend answers. */
  readonly info: Effect.Effect<DeviceInfo>
  /** Validates, compiles, loads and maps a program; the Model lives until the caller's scope closes. */
  readonly compile: (options: CompileOptions) => Effect.Effect<Model, CompileFailure, Scope.Scope>
  /** Same as `compile`, also returning the compile timings. */
  readonly compileWithStats: (
    options: CompileOptions
  ) => Effect.Effect<{ readonly model: Model; readonly stats: CompileStats }, CompileFailure, Scope.Scope>
  /** Compiles this client has spent against its budget. */
  readonly compileCount: Effect.Effect<number>
  /** The compile budget (119 on the engine's daemon). */
  readonly compileLimit: number
  /** Compiles left before CompileBudgetExhaustedError. */
  readonly remainingBudget: Effect.Effect<number>
  /** A standalone surface of `bytes` bytes, released with the scope. */
  readonly createSurface: (bytes: number) => Effect.Effect<Surface, InvalidArgumentError | MapError, Scope.Scope>
  /** A shared event, released with the scope. */
  readonly createSharedEvent: Effect.Effect<SharedEvent, EvalError, Scope.Scope>
  /** Native handles alive in the backend (zero once every scope has closed). */
  readonly liveHandles: Effect.Effect<number>
  /** What the client negotiated with the engine; absent fields were not reported. */
  readonly clientInfo: Effect.Effect<ClientInfo, NoAneError>
  /** Device info, client info and cache info together (the cache directory is never reported). */
  readonly snapshot: Effect.Effect<ClientSnapshot, NoAneError>
  /**
   * Begins a real-time task: models evaluated through it take the engine's real-time path. The task ends when the
   * scope closes. Unverified on hardware; on the simulator it evaluates as `eval` does.
   */
  readonly beginRealTimeTask: Effect.Effect<RealTimeTask, EvalError, Scope.Scope>
  /** Opens the backend's GPU device (see `Metal.open`); NoMetalError where there is none. */
  readonly openMetal: Effect.Effect<MetalDevice, NoMetalError, Scope.Scope>
}

/** An active real-time task (see {@link AneService.beginRealTimeTask}). */
export interface RealTimeTask {
  /**
   * Evaluates `model`'s own request on the real-time path, synchronously. ClosedError once the task's scope or the
   * model's has closed; InvalidArgumentError for something that is not a Model of this client.
   */
  readonly eval: (model: Model) => Effect.Effect<void, EvalError | ClosedError | InvalidArgumentError>
}

/** The ANE client. One per process is typical; the models it compiles live in the caller's scope. */
export class Ane extends Context.Tag("effect-ane/Ane")<Ane, AneService>() {}

/** Client options. */
export interface AneOptions {
  /** Give every eval of every model a span (costs several µs per eval on effect 3; default false). */
  readonly traceEvals?: boolean
}

/** Which backend `layerConfig` builds. */
export type BackendChoice = "auto" | "hardware" | "simulator"

/** Builds a client over the Backend in context; probes eagerly so a missing engine fails here. */
export const make = (options: AneOptions = {}): Effect.Effect<AneService, NoAneError, Backend | Scope.Scope> =>
  internal.make(options)

/** The client over whatever Backend layer the caller provides (custom or test backends). */
export const layerBackend = (options: AneOptions = {}): Layer.Layer<Ane, NoAneError, Backend> =>
  Layer.scoped(Ane, make(options))

/** The real engine through the private framework; fails with NoAneError where there is none. Unverified on a Mac. */
export const layer: Layer.Layer<Ane, NoAneError> = layerBackend().pipe(Layer.provide(NativeBackend.layer))

/** Options of the hardware backend (`evalThreads`, `compileLimit`, …): `NativeBackend.NativeOptions`. */
export type HardwareOptions = NativeBackend.NativeOptions

/** The hardware Backend with `options`: probed as `NativeBackend.layer` is, unless `paths` names the libraries. */
const hardwareLayer = (options: HardwareOptions): Layer.Layer<Backend, NoAneError> =>
  options.paths !== undefined
    ? NativeBackend.layerWith(options)
    : Layer.unwrapEffect(Effect.map(NativeBackend.probe, () => NativeBackend.layerWith(options)))

/**
 * {@link layer} with hardware backend options, e.g. `Ane.layerWith({ evalThreads: 16 })` for more asynchronous
 * evaluations in flight than the default eval thread pool runs. Fails with NoAneError where there is no engine.
 */
export const layerWith = (options: HardwareOptions = {}, aneOptions: AneOptions = {}): Layer.Layer<Ane, NoAneError> =>
  layerBackend(aneOptions).pipe(Layer.provide(hardwareLayer(options)))

/** The CPU simulator of the engine (any OS). */
export const layerSimulator = (
  options?: SimBackend.SimulatorOptions,
  aneOptions: AneOptions = {}
): Layer.Layer<Ane> => layerBackend(aneOptions).pipe(Layer.provide(SimBackend.layer(options)), Layer.orDie)

/**
 * The engine when present, else the simulator. Never silent: logs the choice (and why) with Effect.logInfo, and
 * `info.backend` says which one answers.
 */
export const layerAuto = (
  options?: SimBackend.SimulatorOptions,
  aneOptions: AneOptions = {},
  hardwareOptions: HardwareOptions = {}
): Layer.Layer<Ane> =>
  Layer.scoped(
    Ane,
    Effect.gen(function*() {
      const hardware = yield* Effect.either(Layer.build(hardwareLayer(hardwareOptions)))
      const backend = hardware._tag === "Right"
        ? hardware.right
        : yield* Effect.zipRight(
          Effect.logInfo(`effect-ane: no ANE hardware (${hardware.left.reason}); using the CPU simulator`),
          Layer.build(SimBackend.layer(options))
        )
      const ane = yield* Effect.provide(make(aneOptions), backend)
      const info = yield* ane.info
      yield* Effect.logInfo(`effect-ane: using the ${info.backend} backend`).pipe(
        Effect.annotateLogs({ backend: info.backend, architecture: info.architecture })
      )
      return ane
    })
  ).pipe(Layer.orDie)

/** A client over `Backend.layerNoop(partial)`: real Model behaviour on a zero-work stub backend, for tests. */
export const layerNoop = (partial: Partial<Backend["Type"]> = {}, aneOptions: AneOptions = {}): Layer.Layer<Ane> =>
  layerBackend(aneOptions).pipe(Layer.provide(backendNoop(partial)), Layer.orDie)

/** One input or output of a {@link StubModel}. */
export interface StubTensor {
  /** Reported as the layout's `name` (default ""). */
  readonly name?: string
  /** `[1, C, H, W]` as in MIL, or its trailing dims (`[C, H, W]`, `[H, W]`, `[W]`). */
  readonly shape: ReadonlyArray<number>
  /** Element type of the surface (default `"fp16"`, the engine's): F32 data rounds through fp16 on the way. */
  readonly dtype?: "fp16" | "fp32"
}

/** A model for {@link layerStub}: declared inputs and outputs, and what an evaluation computes. */
export interface StubModel {
  /** The Model's `id` (default `stub:<path>`, or `stub:mil:<n>` for in-memory programs). */
  readonly id?: string
  readonly inputs: ReadonlyArray<StubTensor>
  readonly outputs: ReadonlyArray<StubTensor>
  /**
   * Called on every evaluation (`eval`, `evalAsync`, `run`, pools, streams) with each input as C×H×W floats in
   * NCHW order; returns one Float32Array per output, or an Effect of them that may fail with an EvalError. A throw
   * becomes an EvalError. Absent: evaluations leave the outputs as they are (zero at first).
   */
  readonly eval?: (
    inputs: ReadonlyArray<Float32Array>
  ) => ReadonlyArray<Float32Array> | Effect.Effect<ReadonlyArray<Float32Array>, EvalError>
}

/** Options of {@link layerStub}. */
export interface StubOptions {
  /**
   * What each compile gets: a table keyed by package path or its last segment (`"encoder.mlmodelc"`), with `"*"`
   * for everything else (in-memory MIL included), or a function of the CompileOptions. A value that is a
   * CompileFailure error makes that compile fail with it; no match fails with CompileError.
   */
  readonly models:
    | Readonly<Record<string, StubModel | CompileFailure>>
    | ((options: CompileOptions) => StubModel | CompileFailure | undefined)
  /** The compile budget (default 119, the engine's): compiles past it fail with CompileBudgetExhaustedError. */
  readonly compileLimit?: number
}

/**
 * A client whose models are the stubs `options.models` declares, for testing application code: real Model
 * behaviour (checks, locks, pools, streams, metrics, ClosedError after the scope), evaluations computed by your
 * functions, `info.backend === "stub"`, `liveHandles` counted. Each build of the layer starts from zero.
 */
export const layerStub = (options: StubOptions, aneOptions: AneOptions = {}): Layer.Layer<Ane> =>
  layerBackend(aneOptions).pipe(Layer.provide(Layer.unwrapEffect(Effect.sync(() => backendNoop(stub.make(options))))), Layer.orDie)

/** Options `layerConfig` reads. */
export interface AneConfig {
  readonly backend: BackendChoice
  readonly traceEvals: boolean
  readonly simulator: SimBackend.SimulatorOptions
  /** Hardware backend options for "hardware" and "auto" (none from the environment; default none). */
  readonly hardware?: HardwareOptions
}

const SIM_NUMERICS_CONFIG = Config.literal("ane", "exact")("ANE_NUMERICS")

const latencyConfig = Config.string("ANE_LATENCY").pipe(
  Config.mapOrFail((s): Either.Either<"off" | { readonly dispatchUs: number }, ConfigError.ConfigError> => {
    if (s === "off") return Either.right("off")
    const n = Number(s)
    return Number.isFinite(n) && n >= 0
      ? Either.right({ dispatchUs: n })
      : Either.left(ConfigError.InvalidData([], `expected "off" or a dispatch time in µs, got ${JSON.stringify(s)}`))
  })
)

/**
 * The default configuration: `ANE_BACKEND` (auto|hardware|simulator, default auto), `ANE_TRACE_EVALS` (default
 * false), and for the simulator `ANE_NUMERICS`, `ANE_COMPILE_BUDGET` and `ANE_LATENCY` (`off`, or dispatch µs).
 */
export const config: Config.Config<AneConfig> = Config.all({
  backend: Config.literal("auto", "hardware", "simulator")("ANE_BACKEND").pipe(Config.withDefault("auto" as const)),
  traceEvals: Config.boolean("ANE_TRACE_EVALS").pipe(Config.withDefault(false)),
  numerics: Config.option(SIM_NUMERICS_CONFIG),
  compileBudget: Config.option(Config.integer("ANE_COMPILE_BUDGET").pipe(Config.validate({
    message: "expected a positive integer",
    validation: (n) => n > 0
  }))),
  latency: Config.option(latencyConfig)
}).pipe(Config.map((c): AneConfig => ({
  backend: c.backend,
  traceEvals: c.traceEvals,
  simulator: {
    ...(Option.isSome(c.numerics) ? { numerics: c.numerics.value } : {}),
    ...(Option.isSome(c.compileBudget) ? { compileBudget: c.compileBudget.value } : {}),
    ...(Option.isSome(c.latency) ? { latency: c.latency.value } : {})
  }
})))

/** Picks the backend from configuration (see {@link config}); a wrong value fails with ConfigError. */
export const layerConfig = (
  configuration: Config.Config<AneConfig> = config
): Layer.Layer<Ane, NoAneError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(configuration, (c): Layer.Layer<Ane, NoAneError> => {
      const aneOptions = { traceEvals: c.traceEvals }
      switch (c.backend) {
        case "hardware":
          return layerWith(c.hardware, aneOptions)
        case "simulator":
          return layerSimulator(c.simulator, aneOptions)
        case "auto":
          return layerAuto(c.simulator, aneOptions, c.hardware)
      }
    })
  )
