/**
 * Builds fake_objc.c with `cc` into a temporary directory (once per content hash) and wraps its controls, with no
 * test-runner dependency (the benchmarks use it too). Missing `cc` is a hard failure: nothing passes without the fake.
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, renameSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { type Id, nil, type Objc, type ObjcPaths, openObjc } from "../../src/native/objc.js"
import type { TensorLayout } from "../../src/schema/TensorLayout.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const source = join(dirname(fileURLToPath(import.meta.url)), "fake_objc.c")
/** Fake Metal, linked in: it takes over these entry points and hands every non-Metal message to fake_objc.c's. */
const metalSource = join(dirname(source), "fake_metal.c")
const inner = ["objc_msgSend=fake_objc_inner_msgSend", "objc_getClass=fake_objc_inner_getClass",
  "fake_check_signature=fake_objc_inner_check_signature", "objc_autoreleasePoolPush=fake_objc_inner_poolPush",
  "objc_autoreleasePoolPop=fake_objc_inner_poolPop"].map((d) => `-D${d}`)

/** Compiles the fake (cached by source hash) and returns the shared-library path. */
export const buildFake = (): string => {
  const hash = createHash("sha256").update(readFileSync(source)).update(readFileSync(metalSource)).digest("hex").slice(0, 16)
  const out = join(tmpdir(), `effect-ane-fake-objc-${hash}.so`)
  if (existsSync(out)) return out
  const work = mkdtempSync(join(tmpdir(), "effect-ane-fake-"))
  const tmp = join(work, "fake_objc.so")
  try {
    execFileSync("cc", ["-shared", "-fPIC", "-O1", "-Wall", ...inner, "-o", tmp, source, metalSource, "-lpthread"], { stdio: "pipe" })
  } catch (cause) {
    const text = cause instanceof Error ? cause.message : String(cause)
    throw new Error(
      `the native backend tests need a C compiler: building ${source} with \`cc -shared -fPIC -O1\` failed (${text}). ` +
        "Install cc (e.g. build-essential); these tests do not skip."
    )
  }
  // Rename is atomic, so parallel test files never load a half-written library.
  renameSync(tmp, out)
  return out
}

/** A tensor entry of a fake `modelAttributes` dictionary (what LiveInputList / LiveOutputList carry). */
export interface AttributeTensor {
  readonly Channels: number
  readonly Width: number
  readonly Height: number
  readonly RowStride: number
  readonly PlaneStride: number
  readonly Type: string
  readonly Name: string
  readonly Symbol?: string
}

/** The attribute entry the engine would report for a layout. */
export const attributeOf = (l: TensorLayout): AttributeTensor => ({
  Channels: l.channels,
  Width: l.width,
  Height: l.height,
  RowStride: l.rowStride,
  PlaneStride: l.planeStride,
  Type: l.elemSize === 4 ? "Float32" : "Float16",
  Name: l.name,
  Symbol: l.symbol || l.name
})

/** Signature of the evaluation callback the fake calls with the surfaces' base addresses. */
export type EvalHook = (hex: string, inputs: ReadonlyArray<bigint>, outputs: ReadonlyArray<bigint>) => number

/**
 * Stages whose Nth call can be made to fail. `rt-begin` / `rt-end` make `beginRealTimeTask` / `endRealTimeTask`
 * answer NO; `rt-eval` makes `evaluateRealTimeWithModel:options:request:error:` answer NO with an NSError.
 */
export type FakeStage = "descriptor" | "compile" | "load" | "map" | "eval" | "surface" | "request" | "rt-begin" | "rt-end" | "rt-eval"

/** The loaded fake and its controls. */
export interface Fake {
  readonly paths: ObjcPaths
  readonly rt: Objc
  readonly reset: () => void
  readonly fail: (stage: FakeStage, nth: number, count: number, code: number) => void
  /** Every message since the last reset: "+Class selector" / "-Class selector", plus "IOSurfaceCreate …" lines. */
  readonly log: () => ReadonlyArray<string>
  readonly live: () => number
  /** The retain count of the live IOSurface whose memory `bytes` starts at (0: none is live, it was freed). */
  readonly surfaceRefs: (bytes: Uint8Array) => number
  /** Real-time tasks begun on the fake client and not yet ended (zeroed by `resetTelemetry`). */
  readonly realTimeActive: () => number
  readonly rejected: () => number
  readonly mismatches: () => number
  readonly orphans: () => number
  readonly lastRejection: () => string
  /** Whether `signature` is the Appendix A cast of `selector` for `receiver`'s class (counted as a mismatch if not). */
  readonly checkSignature: (receiver: Id, selector: string, signature: string) => boolean
  /** Makes calls nth..nth+count-1 of a stage answer YES while also storing an NSError. */
  readonly spuriousError: (stage: "compile" | "load" | "map" | "eval", nth: number, count: number) => void
  /** How long each evaluation stays inside the fake engine, with its lock released (microseconds). */
  readonly setEvalDelay: (us: number) => void
  /** The most evaluations that were inside the fake engine at once since the last reset. */
  readonly inFlightMax: () => number
  /** Evaluations inside the fake engine now. */
  readonly inFlight: () => number
  /** Makes `-localModelPath` answer `NSTemporaryDirectory()` itself instead of the model's own folder. */
  readonly localPathParent: (on: boolean) => void
  /** Messages sent on a thread with no autorelease pool pushed since the last reset, and the last one ("" if none). */
  readonly unpooled: () => { readonly count: number; readonly last: string }
  /** Nanoseconds spent inside the fake's objc_msgSend and pool functions so far (all threads). */
  readonly busyNs: () => number
  /** Holds every evaluation inside the fake engine (true) until released (false). */
  readonly holdEvals: (on: boolean) => void
  /** Stack bytes each evaluation touches inside the engine (a thread with less stack crashes). */
  readonly setEvalStack: (bytes: number) => void
  /** CPU writes to a surface with no write lock held ("unlocked"), or bad lock/unlock calls ("lock"), since reset. */
  readonly surfaceMisuse: (what: "unlocked" | "lock") => number
  /** CPU locks held now on the surface whose memory `bytes` starts at (-1: none is live there). */
  readonly surfaceLocks: (bytes: Uint8Array) => number
  /** Package-model shared-event evaluations since the last reset. */
  readonly sharedEventEvals: () => number
  /** What the fake's `NSTemporaryDirectory()` answers (never `$TMPDIR` itself). */
  readonly temporaryDirectory: () => string
  /** Sets the attributes later-loaded models report (built with the fake's own NSDictionary), or clears them. */
  readonly setAttributes: (spec: {
    readonly inputs: ReadonlyArray<AttributeTensor>
    readonly outputs: ReadonlyArray<AttributeTensor>
    readonly inputSymbols?: ReadonlyArray<string>
    readonly outputSymbols?: ReadonlyArray<string>
  } | undefined) => void
  readonly setEval: (hook: EvalHook | undefined) => void
  /** Whether in-memory models answer `-sharedConnection` (the client map / direct-eval path); on by default. */
  readonly setClientPath: (on: boolean) => void
  /** What perf-stats objects report (§13.2); unset parts keep their current value. */
  readonly setStats: (spec: StatsSpec) => void
  /** Whether `-[_ANEClient virtualClient]` answers an object (undefined: nil), and what it reports. */
  readonly setVirtualClient: (info: VirtualClientSpec | undefined) => void
  /** What models of one class and their `_ANEProgramForEvaluation` report. */
  readonly setDiagnostics: (cls: "_ANEInMemoryModel" | "_ANEModel", spec: DiagnosticsSpec) => void
  /** Hides a message written as a log line (`"-_ANERequest perfStatsArray"`): respondsToSelector: says NO. */
  readonly hide: (line: string) => void
  /**
   * Back to the defaults: no stats data, no virtual client, zero diagnostics, nothing hidden, no real-time task, and
   * the client steps of {@link Fake.clientStep} at their defaults.
   */
  readonly resetTelemetry: () => void
  /**
   * What one §3 acquisition step answers: "absent" (not implemented: respondsToSelector: NO), "nil" or "object".
   * Defaults: sharedPrivateConnection absent, the others an object.
   */
  readonly clientStep: (step: ClientStepName, answer: "absent" | "nil" | "object") => void
  /** Per client origin: retain / release messages since the last reset, and instances alive. */
  readonly clientStat: (what: "retain" | "release" | "alive", origin: ClientOrigin) => number
  /** Messages sent to freed clients since the last reset (each also counts as a rejection). */
  readonly zombies: () => number
}

/** The selectors of the §3 steps the fake can be told to answer. */
export type ClientStepName = "sharedPrivateConnection" | "sharedConnection" | "alloc" | "initWithRestrictedAccessAllowed:" | "new"

/** Where a fake client came from: `+sharedPrivateConnection`, `+sharedConnection`, `+alloc`/init, `+new`. */
export type ClientOrigin = "private" | "shared" | "init" | "new"

const ORIGINS: Record<ClientOrigin, number> = { private: 1, shared: 2, init: 3, new: 4 }

/** Perf-stats answers of the fake. */
export interface StatsSpec {
  /** hwExecutionTime of the request's attached object after each evaluation. */
  readonly hwNs?: bigint
  /** Length of `perfStatsArray` and the hwExecutionTime of its entries. */
  readonly entries?: number
  readonly arrayHwNs?: bigint
  /** Whether `+statsWithHardwareExecutionNS:` returns an object. */
  readonly factory?: boolean
  /** perfCounterData / pStatsRawData bytes; null makes them nil. */
  readonly counterData?: Uint8Array | null
  readonly rawData?: Uint8Array | null
  /** Names `stringForPerfCounter:` returns by index (nil past the end); null for none. */
  readonly names?: ReadonlyArray<string> | null
  /** Entries added to the `performanceCounters` dictionary. */
  readonly counters?: ReadonlyArray<readonly [number, bigint]>
}

/** What the fake virtual client reports. */
export interface VirtualClientSpec {
  readonly numAnes: number
  readonly numCores: number
  readonly architecture: string
  readonly boardType: number
  readonly capabilityMask: bigint
  readonly dataInterfaceVersion: number
  readonly precompiled: boolean
}

/** What a fake model class reports to the §13.2 ProbeDiagnostics selectors. */
export interface DiagnosticsSpec {
  readonly queueDepth: number
  readonly program: boolean
  readonly inFlight: bigint
  readonly programQueueDepth: number
  readonly programHandle: bigint
  readonly handle: bigint
  readonly state: bigint
}

let cached: Fake | undefined

/** Loads the fake once per test process. */
export const loadFake = (): Fake => {
  if (cached !== undefined) return cached
  const path = buildFake()
  const lib = koffi.load(path)
  const paths: ObjcPaths = { objc: path, foundation: path, coreFoundation: path, ioSurface: path, ane: path }
  const rt = openObjc(paths)
  const fn = (name: string, ret: string, args: Array<string>) => lib.func(name, ret, args)
  const reset = fn("fake_reset", "void", [])
  const fail = fn("fake_fail", "int", ["const char *", "long", "long", "int64_t"])
  const log = fn("fake_log", "const char *", [])
  const live = fn("fake_live", "long", [])
  const surfaceRefs = fn("fake_surface_refs", "long", ["void *"])
  const realTimeActive = fn("fake_realtime_active", "long", [])
  const rejected = fn("fake_rejected", "long", [])
  const mismatches = fn("fake_signature_mismatches", "long", [])
  const orphans = fn("fake_orphans", "long", [])
  const lastRejection = fn("fake_last_rejection", "const char *", [])
  const check = fn("fake_check_signature", "int", ["void *", "const char *", "const char *"])
  const spurious = fn("fake_spurious_error", "int", ["const char *", "long", "long"])
  const setDelay = fn("fake_set_eval_delay", "void", ["long"])
  const inFlightMax = fn("fake_in_flight_max", "long", [])
  const inFlight = fn("fake_in_flight", "long", [])
  const localPathParent = fn("fake_local_path_parent", "void", ["int"])
  const unpooled = fn("fake_unpooled", "long", [])
  const lastUnpooled = fn("fake_last_unpooled", "const char *", [])
  const busyNs = fn("fake_busy_ns", "uint64_t", [])
  const holdEvals = fn("fake_hold_evals", "void", ["int"])
  const setStack = fn("fake_set_eval_stack", "void", ["long"])
  const misuse = fn("fake_surface_misuse", "long", ["const char *"])
  const surfaceLocks = fn("fake_surface_locks", "long", ["void *"])
  const sharedEventEvals = fn("fake_shared_event_evals", "long", [])
  const temporaryDirectory = fn("fake_temporary_directory", "const char *", [])
  const setAttrs = fn("fake_set_attributes", "void", ["void *"])
  const setClientPath = fn("fake_set_client_path", "void", ["int"])
  const statsSet = fn("fake_stats_set", "void", ["uint64_t", "long", "uint64_t", "int"])
  const statsData = fn("fake_stats_data", "int", ["const char *", "void *", "long"])
  const statsNames = fn("fake_stats_names", "void", ["const char *"])
  const statsCounter = fn("fake_stats_counter", "void", ["long", "uint64_t"])
  const setVirtual = fn("fake_set_virtual_client", "void", ["int", "uint32_t", "uint32_t", "const char *", "int64_t", "uint64_t", "uint32_t", "int"])
  const setDiag = fn("fake_set_diagnostics", "int", ["const char *", "int", "int", "int64_t", "int", "uint64_t", "uint64_t", "uint64_t"])
  const hide = fn("fake_hide", "int", ["const char *"])
  const resetTelemetry = fn("fake_telemetry_reset", "void", [])
  const clientStep = fn("fake_client_step", "int", ["const char *", "int"])
  const clientStat = fn("fake_client_stat", "long", ["const char *", "long"])
  // The fake keeps the values it was last told; this mirror lets setStats change one part at a time.
  const scalars = { hwNs: 0n, entries: 0, arrayHwNs: 0n, factory: true }
  const EvalProto = koffi.proto("int FakeEvalCallback(const char *hex, int nin, void *inputs, int nout, void *outputs)")
  const setCb = fn("fake_set_eval_callback", "void", [koffi.pointer(EvalProto) as unknown as string])
  let registered: bigint | undefined

  const dictOf = (entries: Record<string, Id>) => {
    const d = rt.mutableDictionary()
    for (const [k, v] of Object.entries(entries)) rt.setObject(d, k, v)
    return d
  }
  const tensorDict = (t: AttributeTensor): Id => {
    const d = rt.mutableDictionary()
    for (const key of ["Channels", "Width", "Height", "RowStride", "PlaneStride"] as const) rt.setObject(d, key, rt.numberInt(t[key]))
    for (const key of ["Type", "Name", "Symbol"] as const) {
      const v = t[key]
      if (v !== undefined) rt.setObject(d, key, rt.nsString(v))
    }
    return d
  }
  const arrayOf = (items: ReadonlyArray<Id>) => {
    const a = rt.mutableArray()
    for (const item of items) rt.addObject(a, item)
    return a
  }
  const owned: Array<Id> = []
  const own = (id: Id) => {
    owned.push(id)
    return id
  }

  cached = {
    paths,
    rt,
    reset: () => reset(),
    fail: (stage, nth, count, code) => {
      if (!fail(stage, nth, count, code)) throw new Error(`unknown fake stage ${stage}`)
    },
    log: () => (log() as string).split("\n").filter((l) => l !== ""),
    live: () => Number(live()),
    surfaceRefs: (bytes) => Number(surfaceRefs(bytes)),
    realTimeActive: () => Number(realTimeActive()),
    rejected: () => Number(rejected()),
    mismatches: () => Number(mismatches()),
    orphans: () => Number(orphans()),
    lastRejection: () => lastRejection() as string,
    checkSignature: (receiver, selector, signature) => check(receiver, selector, signature) === 1,
    spuriousError: (stage, nth, count) => {
      if (!spurious(stage, nth, count)) throw new Error(`unknown fake stage ${stage}`)
    },
    setEvalDelay: (us) => setDelay(us),
    inFlightMax: () => Number(inFlightMax()),
    inFlight: () => Number(inFlight()),
    localPathParent: (on) => localPathParent(on ? 1 : 0),
    unpooled: () => ({ count: Number(unpooled()), last: lastUnpooled() as string }),
    busyNs: () => Number(busyNs()),
    holdEvals: (on) => holdEvals(on ? 1 : 0),
    setEvalStack: (bytes) => setStack(bytes),
    surfaceMisuse: (what) => Number(misuse(what)),
    surfaceLocks: (bytes) => Number(surfaceLocks(bytes)),
    sharedEventEvals: () => Number(sharedEventEvals()),
    temporaryDirectory: () => temporaryDirectory() as string,
    setAttributes: (spec) => {
      if (spec === undefined) {
        setAttrs(null)
        return
      }
      rt.autoreleasePool(() => {
        const inputs = own(arrayOf(spec.inputs.map((t) => own(tensorDict(t)))))
        const outputs = own(arrayOf(spec.outputs.map((t) => own(tensorDict(t)))))
        const procedure = own(dictOf({ LiveInputList: inputs, LiveOutputList: outputs }))
        const status = own(arrayOf([procedure]))
        const description = own(dictOf({
          kANEFModelInputSymbolsArrayKey: own(arrayOf((spec.inputSymbols ?? spec.inputs.map((t) => t.Symbol ?? t.Name)).map((s) => rt.nsString(s)))),
          kANEFModelOutputSymbolsArrayKey: own(arrayOf((spec.outputSymbols ?? spec.outputs.map((t) => t.Symbol ?? t.Name)).map((s) => rt.nsString(s))))
        }))
        const attributes = own(dictOf({ NetworkStatusList: status, ANEFModelDescription: description }))
        setAttrs(attributes)
        // The fake retains the dictionary; our +1 references go now.
        for (const o of owned.splice(0)) rt.release(o)
      })
    },
    setStats: (spec) => {
      if (spec.hwNs !== undefined) scalars.hwNs = spec.hwNs
      if (spec.entries !== undefined) scalars.entries = spec.entries
      if (spec.arrayHwNs !== undefined) scalars.arrayHwNs = spec.arrayHwNs
      if (spec.factory !== undefined) scalars.factory = spec.factory
      statsSet(scalars.hwNs, scalars.entries, scalars.arrayHwNs, scalars.factory ? 1 : 0)
      for (const [which, bytes] of [["counter", spec.counterData], ["raw", spec.rawData]] as const) {
        if (bytes === undefined) continue
        statsData(which, bytes === null || bytes.length === 0 ? null : bytes, bytes === null ? -1 : bytes.length)
      }
      if (spec.names !== undefined) statsNames(spec.names === null || spec.names.length === 0 ? null : spec.names.join("\n"))
      for (const [index, value] of spec.counters ?? []) statsCounter(index, value)
    },
    setVirtualClient: (info) => {
      if (info === undefined) setVirtual(0, 0, 0, "", 0, 0n, 0, 0)
      else {
        setVirtual(1, info.numAnes, info.numCores, info.architecture, info.boardType, info.capabilityMask, info.dataInterfaceVersion, info.precompiled ? 1 : 0)
      }
    },
    setDiagnostics: (cls, d) => {
      setDiag(cls, d.queueDepth, d.program ? 1 : 0, d.inFlight, d.programQueueDepth, d.programHandle, d.handle, d.state)
    },
    hide: (line) => {
      if (!hide(line)) throw new Error("too many hidden messages in the fake")
    },
    resetTelemetry: () => {
      Object.assign(scalars, { hwNs: 0n, entries: 0, arrayHwNs: 0n, factory: true })
      resetTelemetry()
    },
    clientStep: (step, answer) => {
      if (!clientStep(step, answer === "absent" ? 0 : answer === "nil" ? 1 : 2)) throw new Error(`unknown client step ${step}`)
    },
    clientStat: (what, origin) => Number(clientStat(what, ORIGINS[origin])),
    zombies: () => Number(clientStat("zombie", 0)),
    setClientPath: (on) => {
      setClientPath(on ? 1 : 0)
    },
    setEval: (hook) => {
      if (registered !== undefined) {
        setCb(null)
        koffi.unregister(registered)
        registered = undefined
      }
      if (hook === undefined) return
      registered = koffi.register((hex: string, nin: number, inputs: bigint, nout: number, outputs: bigint) => {
        const ins = nin > 0 ? (koffi.decode(inputs, koffi.array("void *", nin)) as Array<bigint>) : []
        const outs = nout > 0 ? (koffi.decode(outputs, koffi.array("void *", nout)) as Array<bigint>) : []
        return hook(hex, ins, outs)
      }, koffi.pointer(EvalProto))
      setCb(registered)
    }
  }
  return cached
}

export { nil }
