/**
 * The hardware Backend: loads the private AppleNeuralEngine framework through koffi and the Objective-C runtime
 * and probes `_ANEDeviceInfo` (spec/native-protocol.md §1–§2). Compiling on hardware is not implemented yet:
 * compile, surfaces and shared events fail with typed errors saying so. Not verified on a Mac.
 */
import { Effect, Layer } from "effect"
import { DeviceInfo } from "../schema/DeviceInfo.js"
import { CompileError, EvalError, MapError, NoAneError } from "../schema/errors.js"
import { Backend } from "../services/Backend.js"

/** Where the private framework lives (inside the dyld shared cache since macOS 11, so never checked on disk). */
export const ANE_FRAMEWORK_PATH = "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"
/** The Objective-C runtime. */
export const OBJC_PATH = "/usr/lib/libobjc.A.dylib"
/** The per-client compile budget the engine's daemon is reported to enforce (spec/native-protocol.md §3). */
export const HARDWARE_COMPILE_LIMIT = 119

const NOT_IMPLEMENTED = "compiling and running programs on the ANE hardware is not implemented in effect-ane yet; " +
  "use Ane.layerSimulator (or Ane.layerAuto) meanwhile"

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

type KoffiModule = typeof import("koffi")

/** Opens libobjc and the framework through koffi and builds the probe runtime. */
const openRuntime = (koffi: KoffiModule): ObjcProbeRuntime => {
  const objc = koffi.load(OBJC_PATH)
  // Loading the framework registers its _ANE* classes with the runtime; nothing is called on the handle itself.
  koffi.load(ANE_FRAMEWORK_PATH)
  const getClass = objc.func("objc_getClass", "void *", ["const char *"])
  const selCache = new Map<string, unknown>()
  const sel = (name: string) => {
    let s = selCache.get(name)
    if (s === undefined) {
      s = objc.func("sel_registerName", "void *", ["const char *"])(name)
      selCache.set(name, s)
    }
    return s
  }
  // objc_msgSend must be cast to the exact prototype per call site: never declared variadic.
  const sendBool = objc.func("objc_msgSend", "bool", ["void *", "void *"])
  const sendU32 = objc.func("objc_msgSend", "uint32_t", ["void *", "void *"])
  const sendI64 = objc.func("objc_msgSend", "int64_t", ["void *", "void *"])
  const sendId = objc.func("objc_msgSend", "void *", ["void *", "void *"])
  const sendCString = objc.func("objc_msgSend", "const char *", ["void *", "void *"])
  const sendBoolSel = objc.func("objc_msgSend", "bool", ["void *", "void *", "void *"])
  return {
    getClass: (name) => getClass(name),
    responds: (cls, s) => Boolean(sendBoolSel(cls, sel("respondsToSelector:"), sel(s))),
    sendBool: (cls, s) => Boolean(sendBool(cls, sel(s))),
    sendU32: (cls, s) => Number(sendU32(cls, sel(s))),
    sendI64: (cls, s) => Number(sendI64(cls, sel(s))),
    sendString: (cls, s) => {
      const obj = sendId(cls, sel(s))
      if (isNull(obj)) return ""
      const description = sendId(obj, sel("description"))
      if (isNull(description)) return ""
      const text = sendCString(description, sel("UTF8String")) as string | null
      return text ?? ""
    }
  }
}

/** The hardware Backend over a probed device; everything past the probe fails with "not implemented". */
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
  liveHandles: Effect.succeed(0)
})

/** Probes the real engine; fails with NoAneError off macOS, without the framework, or without an ANE. */
export const probe: Effect.Effect<DeviceInfo, NoAneError> = Effect.suspend(() => {
  if (process.platform !== "darwin") {
    return Effect.fail(
      new NoAneError({ op: "probe", reason: `platform ${process.platform} is not macOS (darwin); the ANE exists only on Apple silicon Macs` })
    )
  }
  return Effect.tryPromise({
    try: () => import("koffi").then((m) => openRuntime(((m as unknown as { default?: KoffiModule }).default ?? m) as KoffiModule)),
    catch: (cause) =>
      new NoAneError({
        op: "probe",
        reason: `the AppleNeuralEngine framework would not load: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause
      })
  }).pipe(
    Effect.flatMap((rt) =>
      Effect.try({
        try: () => probeWith(rt),
        catch: (cause) => new NoAneError({ op: "probe", reason: `probing _ANEDeviceInfo failed: ${String(cause)}`, cause })
      })
    ),
    Effect.flatten
  )
})

/** The hardware Backend layer (unverified on a Mac): NoAneError where there is no usable engine. */
export const layer: Layer.Layer<Backend, NoAneError> = Layer.effect(Backend, Effect.map(probe, makeBackend))
