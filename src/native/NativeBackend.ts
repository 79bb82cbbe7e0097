/**
 * The hardware Backend: loads the Objective-C runtime and the private AppleNeuralEngine framework through koffi,
 * probes `_ANEDeviceInfo` (spec/native-protocol.md §1–§2), compiles in-memory MIL and `.mlmodelc` packages (§4–§5),
 * maps and evaluates requests (§7), drives shared events (§9), reads telemetry (§13) and runs real-time tasks
 * (§14.5). Exercised on Linux against a fake runtime
 * (test/native-fake); not verified on a Mac.
 */
import { execFileSync } from "node:child_process"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { compileOptionsProblem } from "../schema/CompileOptions.js"
import { DeviceInfo } from "../schema/DeviceInfo.js"
import {
  CompileBudgetExhaustedError,
  CompileError,
  EvalError,
  InvalidArgumentError,
  MapError,
  NoAneError
} from "../schema/errors.js"
import type { ClientInfo } from "../schema/Telemetry.js"
import { Backend } from "../services/Backend.js"
import type { NativeEnv } from "./env.js"
import { DEFAULT_EVAL_THREADS, makeEvalPool } from "./evalPool.js"
import { compileModel } from "./model.js"
import { standaloneSurface } from "./surfaces.js"
import { beginRealTimeTask } from "./realtime.js"
import { sharedEvent } from "./sharedEvent.js"
import { openNativeMetal } from "./metal.js"
import { type Id, MACOS_PATHS, nil, type Objc, type ObjcPaths } from "./objc.js"
import { type ClientSlot, clientSlot, NO_CLIENT_HINT } from "./client.js"
import { probeClientInfo } from "./telemetry.js"

/** Where the private framework lives (inside the dyld shared cache since macOS 11, so never checked on disk). */
export const ANE_FRAMEWORK_PATH = "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"
/** The Objective-C runtime. */
export const OBJC_PATH = "/usr/lib/libobjc.A.dylib"
/** The per-client compile budget the engine's daemon is reported to enforce (spec/native-protocol.md §3). */
export const HARDWARE_COMPILE_LIMIT = 119

const NOT_IMPLEMENTED = "compiling is not implemented by a backend built from DeviceInfo alone (no Objective-C " +
  "runtime loaded); use NativeBackend.layer on macOS, or Ane.layerSimulator (or Ane.layerAuto)"

/** The few Objective-C calls the probe needs; one typed `objc_msgSend` cast per signature. */
export interface ObjcProbeRuntime {
  /** `objc_getClass`; null when the class is not loaded. */
  readonly getClass: (name: string) => unknown
  /** Whether the class object answers the class-method selector (`+respondsToSelector:`). */
  readonly responds: (cls: unknown, selector: string) => boolean
  readonly sendBool: (cls: unknown, selector: string) => boolean
  readonly sendU32: (cls: unknown, selector: string) => number
  readonly sendI64: (cls: unknown, selector: string) => number
  /** Sends a selector returning an object and converts it with `-description` / `-UTF8String`; "" for nil. */
  readonly sendString: (cls: unknown, selector: string) => string
}

const isNull = (p: unknown) => p === null || p === undefined || p === 0n || p === 0

/**
 * Runs the §2 probe sequence over a runtime: hasANE, numANECores, isVirtualMachine, aneArchitectureType,
 * productName, buildVersion, then the best-effort four, each gated with respondsToSelector.
 */
export const probeWith = (rt: ObjcProbeRuntime): Effect.Effect<DeviceInfo, NoAneError> =>
  Effect.suspend(() => {
    const cls = rt.getClass("_ANEDeviceInfo")
    if (isNull(cls)) {
      return Effect.fail(new NoAneError({ op: "probe", reason: "class _ANEDeviceInfo is not available in this OS" }))
    }
    const has = (sel: string) => rt.responds(cls, sel)
    const bool = (sel: string) => has(sel) && rt.sendBool(cls, sel)
    const u32 = (sel: string) => (has(sel) ? rt.sendU32(cls, sel) : 0)
    const str = (sel: string) => (has(sel) ? rt.sendString(cls, sel) : "")
    if (!has("hasANE")) {
      return Effect.fail(new NoAneError({ op: "probe", reason: "_ANEDeviceInfo does not answer hasANE" }))
    }
    const hasAne = rt.sendBool(cls, "hasANE")
    const numCores = u32("numANECores")
    const isVm = bool("isVirtualMachine")
    const architecture = str("aneArchitectureType")
    const product = str("productName")
    const buildVersion = str("buildVersion")
    const info = DeviceInfo.make({
      hasAne,
      numCores,
      architecture,
      product,
      buildVersion,
      isVm,
      numAnes: u32("numANEs"),
      subType: str("aneSubType"),
      boardType: has("aneBoardType") ? rt.sendI64(cls, "aneBoardType") : 0,
      internalBuild: bool("isInternalBuild"),
      backend: "hardware"
    })
    return hasAne
      ? Effect.succeed(info)
      : Effect.fail(new NoAneError({ op: "probe", reason: `this ${product || "machine"} reports no ANE (hasANE = NO)` }))
  })

/** The probe runtime over a loaded {@link Objc}; each string answer is read inside its own autorelease pool. */
export const probeRuntime = (rt: Objc): ObjcProbeRuntime => {
  const id = (p: unknown): Id => (typeof p === "bigint" ? p : 0n)
  return {
    getClass: (name) => {
      const cls = rt.autoreleasePool(() => rt.cls(name))
      return cls === 0n ? null : cls
    },
    // Every call inside its own pool, even those that return no object: §14.1, on every thread.
    responds: (cls, s) => rt.autoreleasePool(() => rt.responds(id(cls), s)),
    sendBool: (cls, s) => rt.autoreleasePool(() => rt.bool(id(cls), s)),
    sendU32: (cls, s) => rt.autoreleasePool(() => rt.int(id(cls), s, "uint32()")),
    sendI64: (cls, s) => rt.autoreleasePool(() => rt.int(id(cls), s, "int64()")),
    sendString: (cls, s) => rt.autoreleasePool(() => rt.describe(rt.id(id(cls), s)))
  }
}

/** Options of {@link layerWith}: where the libraries are and the backend's limits. */
export interface NativeOptions {
  /** Library paths (default {@link MACOS_PATHS}); tests point every one at the fake runtime. */
  readonly paths?: ObjcPaths
  /** Successful compiles allowed per backend (default {@link HARDWARE_COMPILE_LIMIT}). */
  readonly compileLimit?: number
  /**
   * Directory whose `<hex>/` folder receives the `model.mil` the in-memory compiler reads. Default: the model's
   * `localModelPath`, else Foundation's `NSTemporaryDirectory()` (never `os.tmpdir()`, which may differ).
   */
  readonly tempDir?: () => string
  /** Pause before the single load retry (default 100 ms). */
  readonly loadRetryMs?: number
  /**
   * Threads of the library's own that run asynchronous evaluations and shared-event waits (default
   * {@link DEFAULT_EVAL_THREADS}, enough for a depth-8 pipeline). Evaluations beyond it queue.
   */
  readonly evalThreads?: number
  /** Observes every message's selector, cast signature and receiver (tests check them against the spec). */
  readonly onSend?: (selector: string, signature: string, receiver: Id) => void
  /** Metal.framework's path for `Metal.open` (default the macOS one); tests point it at the fake. */
  readonly metalPath?: string
}

/** Loads the libraries and binds the runtime; any failure is a NoAneError naming it. */
export const openRuntime = (options: NativeOptions = {}): Effect.Effect<Objc, NoAneError> =>
  Effect.tryPromise({
    try: async () => {
      const { openObjc, MACOS_PATHS } = await import("./objc.js")
      return openObjc(options.paths ?? MACOS_PATHS, options.onSend !== undefined ? { onSend: options.onSend } : {})
    },
    catch: (cause) =>
      new NoAneError({
        op: "probe",
        reason: `the Objective-C runtime or the AppleNeuralEngine framework would not load: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  })

/** A Backend over a DeviceInfo with no runtime loaded: everything past the probe fails with "not implemented". */
export const makeBackend = (info: DeviceInfo): Backend["Type"] => ({
  kind: "hardware",
  probe: Effect.succeed(info),
  compile: (options) =>
    Effect.fail(
      new CompileError({
        op: "Ane.compile",
        model: options._tag === "package" ? options.path : "in-memory MIL",
        diagnostics: [],
        hint: NOT_IMPLEMENTED
      })
    ),
  compileCount: Effect.succeed(0),
  compileLimit: HARDWARE_COMPILE_LIMIT,
  createSurface: () => Effect.fail(new MapError({ op: "Ane.createSurface", model: "surface", hint: NOT_IMPLEMENTED })),
  createSharedEvent: Effect.fail(new EvalError({ op: "Ane.createSharedEvent", model: "shared event", hint: NOT_IMPLEMENTED })),
  liveHandles: Effect.succeed(0),
  clientInfo: Effect.fail(new NoAneError({ op: "Backend.clientInfo", reason: "no Objective-C runtime is loaded, so there is no _ANEClient" })),
  beginRealTimeTask: Effect.fail(new EvalError({
    op: "beginRealTimeTask",
    model: "real-time task",
    hint: "no Objective-C runtime is loaded, so there is no _ANEClient; use NativeBackend.layer on macOS"
  }))
})

/**
 * Why this process cannot reach the engine, from its platform and architecture, or undefined when it can try. An
 * x64 Node on a Mac runs under Rosetta on Apple silicon (`translated`: `sysctl.proc_translated` is 1) or on an Intel
 * Mac; neither reaches the ANE, whose framework and daemon serve arm64 processes only.
 */
export const platformProblem = (platform: string, arch: string, translated: boolean): string | undefined => {
  if (platform !== "darwin") return `platform ${platform} is not macOS (darwin); the ANE exists only on Apple silicon Macs`
  if (arch === "arm64") return undefined
  return translated
    ? `this Node is ${arch} running under Rosetta; the ANE needs a native arm64 Node (install the arm64 build, e.g. \`arch -arm64 node\`)`
    : `this Node is ${arch} on an Intel Mac; the ANE exists only on Apple silicon`
}

/** Whether the process runs under Rosetta translation (`sysctl -n sysctl.proc_translated` is 1). */
const rosetta = (): boolean => {
  try {
    return execFileSync("/usr/sbin/sysctl", ["-in", "sysctl.proc_translated"], { encoding: "utf8", timeout: 2000 }).trim() === "1"
  } catch {
    return false
  }
}

/** Probes the real engine; fails with NoAneError off macOS, under Rosetta, without the framework, or without an ANE. */
export const probe: Effect.Effect<DeviceInfo, NoAneError> = Effect.suspend(() => {
  const problem = platformProblem(process.platform, process.arch, process.platform === "darwin" && process.arch !== "arm64" && rosetta())
  if (problem !== undefined) return Effect.fail(new NoAneError({ op: "probe", reason: problem }))
  return Effect.flatMap(openRuntime(), probeObjc)
})

/** Runs the §2 probe over a loaded runtime. */
export const probeObjc = (rt: Objc): Effect.Effect<DeviceInfo, NoAneError> =>
  Effect.try({
    try: () => probeWith(probeRuntime(rt)),
    catch: (cause) => new NoAneError({ op: "probe", reason: `probing _ANEDeviceInfo failed: ${String(cause)}`, cause })
  }).pipe(Effect.flatten)

/**
 * §13.2 ProbeClientInfo over a loaded runtime: the client `client()` finds (§3 Open order, see ./client.ts), then its
 * virtual client or the `_ANEDeviceInfo` fallback. NoAneError when no client connection can be had.
 */
export const clientInfoWith = (rt: Objc, client: () => Id): Effect.Effect<ClientInfo, NoAneError> =>
  Effect.suspend(() => {
    const connected = rt.autoreleasePool(client)
    if (connected === nil) {
      return Effect.fail(new NoAneError({ op: "Backend.clientInfo", reason: NO_CLIENT_HINT }))
    }
    return Effect.sync(() => rt.autoreleasePool(() => probeClientInfo(rt, connected)))
  })

/** Counters of a hardware backend that the Backend port does not carry. */
export interface NativeStats {
  /** Objects left unreleased on purpose after shared-event evaluations of package models (§7.7). */
  readonly keptAfterSharedEvents: number
  /** The eval thread pool: threads started, jobs running, the most that ran at once. */
  readonly evalThreads: { readonly threads: number; readonly running: number; readonly runningMax: number }
}

const statsOf = new WeakMap<Backend["Type"], () => NativeStats>()

/** The counters of a backend made by this module; undefined for any other backend. */
export const nativeStats = (backend: Backend["Type"]): NativeStats | undefined => statsOf.get(backend)?.()

/**
 * The hardware Backend over a loaded runtime and its probe answers. Its `_ANEClient` (§3 Open order) is found on
 * first use and, when owned (`+alloc`/`-initWithRestrictedAccessAllowed:` or `+new`), released when `Scope` closes.
 */
export const makeNative = (
  rt: Objc,
  info: DeviceInfo,
  options: NativeOptions = {}
): Effect.Effect<Backend["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const pool = makeEvalPool({ paths: options.paths ?? MACOS_PATHS, threads: options.evalThreads ?? DEFAULT_EVAL_THREADS })
    // Closed last (finalizers run in reverse): models and requests release first, and wait for their evaluations.
    yield* Effect.addFinalizer(() => pool.close)
    // One client for telemetry, real-time tasks and the package fallback (§3: the Open-acquired client; errata D6).
    // Users that outlive a call (package models, real-time tasks) retain it, so releasing ours here is always safe.
    const slot: ClientSlot = clientSlot(rt)
    yield* Effect.addFinalizer(() => Effect.sync(() => slot.close()))
    const client = slot.get
    const env: NativeEnv = {
      rt,
      live: 0,
      compiles: 0,
      tempDir: () => rt.autoreleasePool(() => rt.nsTemporaryDirectory()),
      tempDirOverride: options.tempDir,
      loadRetryMs: options.loadRetryMs ?? 100,
      pool,
      client,
      keptAfterSharedEvents: 0
    }
    const limit = options.compileLimit ?? HARDWARE_COMPILE_LIMIT
    const stats = (): NativeStats => ({ keptAfterSharedEvents: env.keptAfterSharedEvents, evalThreads: pool.stats() })
    const backend: Backend["Type"] = {
      kind: "hardware",
      probe: Effect.succeed(info),
      compile: (compileOptions) =>
        Effect.suspend(() => {
          const problem = compileOptionsProblem(compileOptions)
          if (problem !== undefined) return Effect.fail(problem)
          // The engine's daemon refuses compiles past its budget; count them here so the failure is typed.
          if (env.compiles >= limit) {
            return Effect.fail(new CompileBudgetExhaustedError({ op: "Ane.compile", used: env.compiles, limit }))
          }
          return compileModel(env, compileOptions)
        }),
      compileCount: Effect.sync(() => env.compiles),
      compileLimit: limit,
      createSurface: (bytes) =>
        Number.isSafeInteger(bytes) && bytes > 0
          ? standaloneSurface(env, bytes)
          : Effect.fail(new InvalidArgumentError({ op: "Ane.createSurface", argument: "bytes", expected: "a positive integer", actual: String(bytes) })),
      createSharedEvent: sharedEvent(env),
      liveHandles: Effect.sync(() => env.live),
      clientInfo: clientInfoWith(rt, client),
      beginRealTimeTask: beginRealTimeTask(env, client),
      openMetal: openNativeMetal(env, options.metalPath)
    }
    statsOf.set(backend, stats)
    return backend
  })

/**
 * The hardware Backend over the libraries at `options.paths` (default: the macOS ones), on any platform: loads
 * them, probes, and builds the backend. Tests use it with the fake runtime.
 */
export const layerWith = (options: NativeOptions = {}): Layer.Layer<Backend, NoAneError> =>
  Layer.scoped(
    Backend,
    Effect.gen(function*() {
      const rt = yield* openRuntime(options)
      const info = yield* probeObjc(rt)
      return yield* makeNative(rt, info, options)
    })
  )

/** The hardware Backend layer (unverified on a Mac): NoAneError off macOS or where there is no usable engine. */
export const layer: Layer.Layer<Backend, NoAneError> = Layer.unwrapEffect(
  Effect.map(probe, () => layerWith())
)
