/**
 * Compile paths A (in-memory MIL, spec/native-protocol.md §4) and B (packages, §5), IOSurfaces and requests
 * (§7.1–§7.4, also over caller-owned surfaces), evaluation (§7.5–§7.6), shared-event evaluation (§9.2) and release
 * on close (§7.7) over the {@link Objc} binding, plus the §13.2 telemetry of requests and models (reads in ./telemetry.ts) and the model side
 * of §14.5 real-time evaluation (the task itself is in ./realtime.ts). Every object
 * stored is retained and released on close; every synchronous native section runs inside its own autorelease pool
 * (§14.1).
 */
import { mkdirSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { Effect, Exit, type Scope } from "effect"
import { checkBlobFilePaths, resolveInside, writeFileNoFollow } from "../backend/weightPath.js"
import type { BackendModel, BackendRequest, BackendSharedEvent, BackendSurface, SharedEventEval } from "../services/Backend.js"
import type { MilCompileOptions, PackageCompileOptions } from "../schema/CompileOptions.js"
import { CompileStats } from "../schema/CompileStats.js"
import {
  ClosedError,
  CompileError,
  type CompileFailure,
  EvalError,
  MapError,
  SharedEventRequiresPackageError,
  UnsupportedLayoutError
} from "../schema/errors.js"
import type { EvalStats, ModelDiagnostics } from "../schema/Telemetry.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import { type NativeStage, nativeError, type StageErrors, thrownError } from "./errors.js"
import { type NativeLayouts, type NativeTensor, parseLayouts } from "./layouts.js"
import { NO_CLIENT_HINT } from "./client.js"
import { type ErrorResult, type Id, nil, type Objc } from "./objc.js"
import { attachPerfStats, probeDiagnostics, readEvalStats } from "./telemetry.js"

/** Shared state of one native backend instance. */
export interface NativeEnv {
  readonly rt: Objc
  /** Live native handles (models, requests, surfaces). */
  live: number
  /** Successful compiles so far. */
  compiles: number
  /** Directory the in-memory compiler reads `<hex>/model.mil` from (§4.3). */
  readonly tempDir: () => string
  /** Pause before the single load retry (100 ms on hardware, §4.2 step 10). */
  readonly loadRetryMs: number
  /** Bounds concurrent off-thread evaluations below koffi's async limit. */
  readonly asyncPermits: Effect.Semaphore
  /** Keeps Node alive while off-thread evaluations are pending. */
  readonly keepAlive: { pending: number; timer: ReturnType<typeof setInterval> | undefined }
  /** The backend's `_ANEClient` (§3 Open order, ./client.ts); nil when none can be had. Call inside a pool. */
  readonly client: () => Id
}

/** Thrown inside a synchronous native section to fail with an already-typed error. */
class Stop<E> {
  constructor(readonly error: E) {}
}

/** Runs `f` in an autorelease pool; a {@link Stop} becomes its error, any other throw a typed `stage` error. */
const native = <A, E, S extends NativeStage>(env: NativeEnv, stage: S, op: string, model: string, what: string, f: () => A) =>
  Effect.try({
    try: () => env.rt.autoreleasePool(f),
    catch: (cause): E | StageErrors[S] => (cause instanceof Stop ? (cause.error as E) : thrownError(stage, op, model, what, cause))
  })

const QOS_SIG = "bool(uint32,id,err)"

/** The Objective-C objects and surfaces behind one request. */
class RequestState {
  /** Surfaces this request created (one live handle each). */
  readonly surfaces: Array<Id> = []
  /** Caller-owned surfaces CFRetained for the request's life (mapRequestOver); not handles of their own. */
  readonly retained: Array<Id> = []
  readonly arrays: Array<Id> = []
  readonly inputs: Array<Uint8Array> = []
  readonly outputs: Array<Uint8Array> = []
  request: Id = nil
  /** The perf-stats object attached to `request` (§13.2), made on the first `evalWithStats`; retained. */
  perfStats: Id = nil
  perfStatsTried = false
  mapped = false
  via: MapVia = "model"
  closed = false
  pending = 0
  private idle: Array<() => void> = []

  constructor(readonly env: NativeEnv, readonly model: ModelState) {}

  begin(): void {
    this.pending++
  }
  end(): void {
    this.pending--
    if (this.pending === 0) {
      const waiters = this.idle
      this.idle = []
      for (const w of waiters) w()
    }
  }
  /** Waits until no off-thread evaluation uses the surfaces. */
  readonly drained: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.pending === 0) return resume(Effect.void)
    this.idle.push(() => resume(Effect.void))
  })

  /** Unmap, then release the request, its arrays and its surfaces (§7.7); idempotent, never fails. */
  release(): void {
    if (this.closed) return
    this.closed = true
    const rt = this.env.rt
    rt.autoreleasePool(() => {
      if (this.mapped) {
        // After a shared-event evaluation a package model is neither unmapped nor unloaded (§7.7, §14.3).
        if (!(this.model.kind === "package" && this.model.sharedEventUsed)) unmapRequest(this.model, this.request, this.via)
        this.mapped = false
      }
      if (this.request !== nil) {
        rt.release(this.request)
        this.env.live--
      }
      rt.release(this.perfStats)
      this.perfStats = nil
      for (const a of this.arrays) rt.release(a)
      for (const s of this.surfaces) {
        rt.cfRelease(s)
        this.env.live--
      }
      // Last, after the wrappers went with the arrays: the caller's surface may be freed here.
      for (const s of this.retained) rt.cfRelease(s)
    })
    this.model.requests.delete(this)
  }
}

/** The Objective-C objects behind one compiled model. */
class ModelState {
  url: Id = nil
  key: Id = nil
  client: Id = nil
  /** The client answers the map/unmap selectors (in-memory models map through it then). */
  clientMap = false
  /** The client answers `doEvaluateDirectWithModel:…`. */
  directEval = false
  sharedEventUsed = false
  milData: Id = nil
  weights: Id = nil
  descriptor: Id = nil
  model: Id = nil
  inner: Id = nil
  options: Id = nil
  loaded = false
  dir: string | undefined
  closed = false
  counted = false
  readonly requests = new Set<RequestState>()

  constructor(readonly env: NativeEnv, readonly qos: number, readonly kind: "mil" | "package") {}

  /** Unmaps every request, unloads, releases every object and removes the temporary directory; idempotent. */
  release(): void {
    if (this.closed) return
    this.closed = true
    for (const r of [...this.requests]) r.release()
    const rt = this.env.rt
    rt.autoreleasePool(() => {
      if (this.loaded) {
        // Unload errors are ignored, as on every close path (§7.7).
        if (this.kind === "mil") rt.sendError(this.model, "unloadWithQoS:error:", "bool(uint32,err)", this.qos)
        else if (!this.sharedEventUsed) {
          rt.sendError(this.client, "unloadModel:options:qos:error:", "bool(id,id,uint32,err)", this.model, nil, this.qos)
        }
        this.loaded = false
      }
      for (const o of [this.inner, this.model, this.descriptor, this.options, this.weights, this.milData, this.url, this.key, this.client]) {
        rt.release(o)
      }
    })
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
    if (this.counted) this.env.live--
  }
}

/** Which object a request was mapped through: the client with the `_ANEModel`, or the in-memory model. */
type MapVia = "client" | "model"

const CLIENT_MAP = "mapIOSurfacesWithModel:request:cacheInference:error:"
const CLIENT_UNMAP = "unmapIOSurfacesWithModel:request:"
const MODEL_MAP = "mapIOSurfacesWithRequest:cacheInference:error:"
const DIRECT_EVAL = "doEvaluateDirectWithModel:options:request:qos:error:"
/** The client's real-time evaluate selector (§14.5). */
export const REAL_TIME_EVAL = "evaluateRealTimeWithModel:options:request:error:"

/** The `_ANEModel` the client selectors take: the inner model of an in-memory model, or the package model. */
const clientModel = (m: ModelState): Id => (m.kind === "mil" ? m.inner : m.model)

const mapVia = (m: ModelState, request: Id, cacheInference: boolean, via: MapVia): ErrorResult =>
  via === "model"
    ? m.env.rt.sendError(m.model, MODEL_MAP, "bool(id,bool,err)", request, cacheInference)
    : m.env.rt.sendError(m.client, CLIENT_MAP, "bool(id,id,bool,err)", clientModel(m), request, cacheInference)

/**
 * Maps with the fallbacks of §7.4 (order per errata D11): packages through the client, YES then NO; in-memory
 * models through the client when it answers both map selectors (client YES, model YES, client NO, model NO),
 * else through the model (YES, NO). Returns the last attempt's result and the path that was used.
 */
const mapWithFallback = (m: ModelState, request: Id): { readonly result: ErrorResult; readonly via: MapVia; readonly selector: string } => {
  const order: ReadonlyArray<readonly [MapVia, boolean]> = m.kind === "package"
    ? [["client", true], ["client", false]]
    : m.clientMap
    ? [["client", true], ["model", true], ["client", false], ["model", false]]
    : [["model", true], ["model", false]]
  let last: { result: ErrorResult; via: MapVia; selector: string } | undefined
  for (const [via, cache] of order) {
    last = { result: mapVia(m, request, cache, via), via, selector: via === "model" ? MODEL_MAP : CLIENT_MAP }
    if (last.result.ok) return last
  }
  return last!
}

const unmapRequest = (m: ModelState, request: Id, via: MapVia): void => {
  if (via === "model") m.env.rt.send(m.model, "unmapIOSurfacesWithRequest:", "void(id)", request)
  else m.env.rt.send(m.client, CLIENT_UNMAP, "void(id,id)", clientModel(m), request)
}

/** One evaluate message to try. */
interface EvalCall {
  readonly receiver: Id
  readonly selector: string
  readonly signature: string
  readonly args: ReadonlyArray<unknown>
}

/**
 * The evaluate messages to try in order (§7.5): the client's direct evaluation first when preferred and answered,
 * then the model kind's own (QoS first on the in-memory model, last on the client).
 */
const evaluateCalls = (m: ModelState, request: Id, options: Id, preferDirect: boolean): ReadonlyArray<EvalCall> => {
  const calls: Array<EvalCall> = []
  if (preferDirect && m.directEval) {
    calls.push({ receiver: m.client, selector: DIRECT_EVAL, signature: "bool(id,id,id,uint32,err)", args: [clientModel(m), options, request, m.qos] })
  }
  calls.push(
    m.kind === "mil"
      ? { receiver: m.model, selector: "evaluateWithQoS:options:request:error:", signature: "bool(uint32,id,id,err)", args: [m.qos, options, request] }
      : { receiver: m.client, selector: "evaluateWithModel:options:request:qos:error:", signature: "bool(id,id,id,uint32,err)", args: [m.model, options, request, m.qos] }
  )
  return calls
}

/** Tries `calls` in order synchronously; the first success, or the last failure with its selector. */
const runCalls = (rt: Objc, calls: ReadonlyArray<EvalCall>): { readonly result: ErrorResult; readonly selector: string } => {
  let last: { result: ErrorResult; selector: string } | undefined
  for (const call of calls) {
    last = { result: rt.sendError(call.receiver, call.selector, call.signature, ...call.args), selector: call.selector }
    if (last.result.ok) break
  }
  return last!
}

/** Tries `calls` in order, each on a koffi worker thread; `done` gets the first success or the last failure. */
const runCallsAsync = (
  rt: Objc,
  calls: ReadonlyArray<EvalCall>,
  done: (result: ErrorResult | { readonly ok: false; readonly thrown: unknown }, selector: string) => void
): void => {
  const attempt = (i: number) => {
    const call = calls[i]!
    try {
      rt.sendErrorAsync(call.receiver, call.selector, call.signature, call.args, (res) => {
        if (!res.ok && !("thrown" in res) && i + 1 < calls.length) return attempt(i + 1)
        done(res, call.selector)
      })
    } catch (thrown) {
      done({ ok: false, thrown }, call.selector)
    }
  }
  attempt(0)
}

/**
 * Writes `model.mil` and the weight files where the in-memory compiler expects them (§4.3), only inside `dir`: a
 * weight path that would leave it, in the options or in a BLOBFILE of the text (the compiler resolves those against
 * `dir`), or a link planted inside it, is refused before anything is written through it (docs/security.md).
 */
const prepopulate = (dir: string, text: Uint8Array, options: MilCompileOptions, op: string, model: string): CompileError | undefined => {
  const site = { op, model }
  const outside = checkBlobFilePaths(options.text, site)
  if (outside !== undefined) return outside
  mkdirSync(join(dir, "weights"), { recursive: true, mode: 0o755 })
  writeFileNoFollow(join(dir, "model.mil"), text)
  for (const w of options.weights) {
    const target = resolveInside(dir, w.path, site)
    if (target instanceof CompileError) return target
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 })
    writeFileNoFollow(target, w.bytes)
  }
  return undefined
}

const failed = (r: ErrorResult) => (r.ok ? undefined : r.error)

/** Creates one IOSurface for a tensor with the six §7.1 properties; returns the surface and its byte view. */
const createSurface = (
  env: NativeEnv,
  layout: Pick<TensorLayout, "width" | "height" | "channels" | "elemSize" | "rowStride" | "allocSize">,
  op: string,
  model: string
): { surface: Id; view: Uint8Array } => {
  const rt = env.rt
  const entries: ReadonlyArray<readonly [string, number]> = [
    ["IOSurfaceWidth", layout.width],
    ["IOSurfaceHeight", layout.channels * layout.height],
    ["IOSurfaceBytesPerElement", layout.elemSize],
    ["IOSurfaceBytesPerRow", layout.rowStride],
    ["IOSurfaceAllocSize", layout.allocSize],
    ["IOSurfacePixelFormat", 0]
  ]
  const keys = entries.map(([k]) => rt.cfString(k))
  const values = entries.map(([, v]) => rt.cfNumber(v))
  const dict = rt.cfDictionary(keys, values)
  const surface = rt.ioSurfaceCreate(dict)
  rt.cfRelease(dict)
  for (const o of [...keys, ...values]) rt.cfRelease(o)
  const where = `tensor [${layout.channels}, ${layout.height}, ${layout.width}] x ${layout.elemSize} ` +
    `(alloc=${layout.allocSize} stride=${layout.rowStride})`
  if (surface === nil) throw new Stop(new MapError({ op, model, hint: `failed to create IOSurface for ${where}` }))
  env.live++
  // The base address of a non-purgeable surface is stable; it is read once under a lock and kept.
  rt.ioSurfaceLock(surface, 0)
  const base = rt.ioSurfaceBase(surface)
  rt.ioSurfaceUnlock(surface, 0)
  const size = rt.ioSurfaceAllocSize(surface)
  if (base === nil || size < layout.allocSize) {
    rt.cfRelease(surface)
    env.live--
    throw new Stop(new MapError({ op, model, hint: `IOSurface for ${where} has no base address or is too small (${size})` }))
  }
  return { surface, view: rt.view(base, layout.allocSize) }
}

/** Where a request's surface for one tensor comes from; records in `state` what must be released with it. */
type SurfaceSource = (side: "input" | "output", tensor: NativeTensor, index: number) => { readonly surface: Id; readonly view: Uint8Array }

/** A new IOSurface per tensor (§7.1), owned by the request. */
const ownSurfaces = (env: NativeEnv, state: RequestState, op: string, id: string): SurfaceSource => (_side, t) => {
  const made = createSurface(env, t.layout, op, id)
  state.surfaces.push(made.surface)
  return made
}

/**
 * Builds an `_ANERequest` over the surfaces `source` gives (§7.3), validates it when asked, and maps it with the
 * cacheInference YES→NO fallback (§7.4). Must run inside a pool; on a throw the caller releases `state`.
 */
const buildRequest = (
  env: NativeEnv,
  m: ModelState,
  layouts: NativeLayouts,
  state: RequestState,
  op: string,
  id: string,
  source: SurfaceSource = ownSurfaces(env, state, op, id),
  validate = false
): void => {
  const rt = env.rt
  const side = (name: "input" | "output", tensors: ReadonlyArray<NativeTensor>, views: Array<Uint8Array>) => {
    const objects = rt.mutableArray()
    state.arrays.push(objects)
    const indices = rt.mutableArray()
    state.arrays.push(indices)
    tensors.forEach((t, i) => {
      const { surface, view } = source(name, t, i)
      views.push(view)
      const wrapped = rt.id(rt.cls("_ANEIOSurfaceObject"), "objectWithIOSurface:", "id(ptr)", surface)
      if (wrapped === nil) throw new Stop(new MapError({ op, model: id, hint: "failed to wrap an IOSurface (_ANEIOSurfaceObject)" }))
      rt.addObject(objects, wrapped)
      rt.addObject(indices, rt.numberInt(t.symbolIndex >= 0 ? t.symbolIndex : i))
    })
    return [objects, indices] as const
  }
  const [inArr, inIdx] = side("input", layouts.inputs, state.inputs)
  const [outArr, outIdx] = side("output", layouts.outputs, state.outputs)
  const procedure = rt.numberInt(0)
  // Every request uses transaction handle 1, as the engine's own clients do.
  const txn = rt.numberU64(1n)
  const cls = rt.cls("_ANERequest")
  let request = rt.id(
    cls,
    "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
    "id(id,id,id,id,id,id,id,id,id)",
    inArr, inIdx, outArr, outIdx, nil, nil, procedure, nil, txn
  )
  if (request === nil) {
    request = rt.id(
      cls,
      "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:",
      "id(id,id,id,id,id,id,id)",
      inArr, inIdx, outArr, outIdx, nil, nil, procedure
    )
  }
  if (request === nil) throw new Stop(new MapError({ op, model: id, hint: "failed to create request (_ANERequest)" }))
  state.request = rt.retain(request)
  env.live++
  if (rt.id(request, "transactionHandle") === nil) rt.send(request, "setTransactionHandle:", "void(id)", txn)
  if (validate && !rt.bool(request, "validate")) throw new Stop(new MapError({ op, model: id, hint: "request validation failed" }))
  const mapped = mapWithFallback(m, request)
  if (!mapped.result.ok) throw new Stop(nativeError("map", op, id, mapped.selector, failed(mapped.result)))
  state.mapped = true
  state.via = mapped.via
  m.requests.add(state)
}

/** Everything a compiled model needs to build requests and evaluate. */
interface Compiled {
  readonly state: ModelState
  readonly id: string
  readonly layouts: NativeLayouts
  readonly stats: CompileStats
}

const ns = (from: bigint) => Number(process.hrtime.bigint() - from)

/**
 * The compile sequence of §4.2 (descriptor, model, temp dir, compileWithQoS, loadWithQoS with one retry after
 * `loadRetryMs`, perfStatsMask re-set around load, layouts) on its own; the caller releases `state` on failure.
 */
const compileSteps = (env: NativeEnv, options: MilCompileOptions, state: ModelState, op: string) =>
  Effect.gen(function*() {
    const rt = env.rt
    const label = "in-memory MIL"
    const mask = options.perfStatsMask
    const setMask = (target: Id) => {
      if (mask !== 0) rt.send(target, "setPerfStatsMask:", "void(uint32)", mask)
    }
    const text = new TextEncoder().encode(options.text)
    const t0 = process.hrtime.bigint()
    const first = yield* native<{ id: string; result: ErrorResult; compileNs: number; t1: bigint }, CompileFailure, "compile">(
      env, "compile", op, label, "building the in-memory model", () => {
        state.milData = rt.data(text)
        state.weights = rt.mutableDictionary()
        for (const w of options.weights) {
          const blob = rt.data(w.bytes)
          const zero = rt.numberInt(0)
          const inner = rt.mutableDictionary()
          rt.setObject(inner, "offset", zero)
          rt.setObject(inner, "data", blob)
          rt.setObject(state.weights, w.path, inner)
          rt.release(blob)
          rt.release(inner)
        }
        const descriptor = rt.id(
          rt.cls("_ANEInMemoryModelDescriptor"), "modelWithMILText:weights:optionsPlist:", "id(id,id,id)",
          state.milData, state.weights, nil
        )
        if (descriptor === nil) {
          throw new Stop(new CompileError({ op, model: label, diagnostics: [], hint: "failed to create model descriptor" }))
        }
        state.descriptor = rt.retain(descriptor)
        const model = rt.id(rt.cls("_ANEInMemoryModel"), "inMemoryModelWithDescriptor:", "id(id)", descriptor)
        if (model === nil) {
          throw new Stop(new CompileError({ op, model: label, diagnostics: [], hint: "failed to create in-memory model" }))
        }
        state.model = rt.retain(model)
        env.live++
        state.counted = true
        setMask(model)
        const hex = rt.string(rt.id(model, "hexStringIdentifier"))
        if (hex === "") throw new Stop(new CompileError({ op, model: label, diagnostics: [], hint: "model has no hex identifier" }))
        const id = `mil:${hex}`
        let refused: CompileError | undefined
        try {
          state.dir = join(env.tempDir(), hex)
          refused = prepopulate(state.dir, text, options, op, id)
        } catch (cause) {
          throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: `pre-populate temp dir: ${String(cause)}`, cause }))
        }
        if (refused !== undefined) throw new Stop(refused)
        state.options = rt.mutableDictionary()
        const compiled = rt.sendError(model, "compileWithQoS:options:error:", QOS_SIG, options.qos, state.options)
        if (!compiled.ok) throw new Stop(nativeError("compile", op, id, "compileWithQoS:options:error:", compiled.error))
        const t1 = process.hrtime.bigint()
        const compileNs = Number(t1 - t0)
        // Compile keeps the mask but load clears it (§14.3).
        setMask(model)
        return { id, result: rt.sendError(model, "loadWithQoS:options:error:", QOS_SIG, options.qos, state.options), compileNs, t1 }
      })
    const { id } = first
    let load = first.result
    if (!load.ok) {
      // Load can fail transiently: one retry after a pause.
      yield* Effect.sleep(env.loadRetryMs)
      load = yield* native<ErrorResult, CompileFailure, "load">(env, "load", op, id, "loading the model", () => {
        setMask(state.model)
        return rt.sendError(state.model, "loadWithQoS:options:error:", QOS_SIG, options.qos, state.options)
      })
    }
    if (!load.ok) return yield* nativeError("load", op, id, "loadWithQoS:options:error:", load.error)
    state.loaded = true
    const loadNs = ns(first.t1)
    const layouts = yield* native<NativeLayouts, CompileFailure, "compile">(env, "compile", op, id, "reading model layouts", () => {
      setMask(state.model)
      const inner = rt.id(state.model, "model")
      if (inner === nil) {
        throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: "in-memory model has no underlying ANEModel after compile" }))
      }
      state.inner = rt.retain(inner)
      setMask(inner)
      // The in-memory model's own client, used for mapping and direct evaluation when it answers them (§7.4–§7.5).
      if (rt.responds(state.model, "sharedConnection")) {
        const client = rt.id(state.model, "sharedConnection")
        if (client !== nil) {
          state.client = rt.retain(client)
          state.clientMap = rt.responds(client, CLIENT_MAP) && rt.responds(client, CLIENT_UNMAP)
          state.directEval = rt.responds(client, DIRECT_EVAL)
        }
      }
      const parsed = parseLayouts(rt, rt.id(inner, "modelAttributes"), op, id)
      if (parsed instanceof CompileError || parsed instanceof UnsupportedLayoutError) throw new Stop(parsed)
      return parsed
    })
    const stats = CompileStats.make({ compileNs: first.compileNs, loadNs, totalNs: ns(t0) })
    return { state, id, layouts, stats } satisfies Compiled
  })

/** Maps one request (over `source`'s surfaces, else its own); releases what it built when it fails. */
const mapOne = (
  env: NativeEnv,
  c: Compiled,
  op: string,
  over?: (state: RequestState) => SurfaceSource
): Effect.Effect<RequestState, MapError> =>
  Effect.suspend(() => {
    const state = new RequestState(env, c.state)
    return native<RequestState, MapError, "map">(env, "map", op, c.id, "mapping a request", () => {
      if (over === undefined) buildRequest(env, c.state, c.layouts, state, op, c.id)
      else buildRequest(env, c.state, c.layouts, state, op, c.id, over(state), true)
      return state
    }).pipe(Effect.tapError(() => Effect.sync(() => state.release())))
  })

/** The native side of a surface made by {@link standaloneSurface}. */
interface NativeSurfaceState {
  readonly env: NativeEnv
  readonly surface: Id
  closed: boolean
}

const nativeSurfaces = new WeakMap<BackendSurface, NativeSurfaceState>()

/** Caller-owned surfaces for a request over them: one per input and output, in the model's order. */
export interface SurfacesOver {
  readonly inputs: ReadonlyArray<BackendSurface>
  readonly outputs: ReadonlyArray<BackendSurface>
}

/**
 * Maps a request over caller-owned surfaces (§7.3–§7.4 with the caller's IOSurfaces). Every argument is checked
 * before any native call: the counts, that each surface came from this backend's `createSurface` and is open, and
 * that it holds the layout's `allocSize`. Each IOSurface is CFRetained for the request's life, so closing the
 * caller's surface first cannot free memory the engine maps; the request also validates before mapping.
 */
const mapOver = (env: NativeEnv, c: Compiled, given: SurfacesOver): Effect.Effect<RequestState, MapError | ClosedError> =>
  Effect.suspend((): Effect.Effect<RequestState, MapError | ClosedError> => {
    const op = "BackendModel.mapRequestOver"
    if (c.state.closed) return Effect.fail(closed(op, c.id))
    const refuse = (hint: string) => Effect.fail(new MapError({ op: "map", model: c.id, hint }))
    const picked: Record<"input" | "output", Array<{ readonly surface: BackendSurface; readonly state: NativeSurfaceState }>> = {
      input: [],
      output: []
    }
    for (const [side, tensors, list] of [["input", c.layouts.inputs, given.inputs], ["output", c.layouts.outputs, given.outputs]] as const) {
      if (list.length !== tensors.length) {
        return refuse(`the model has ${tensors.length} ${side}(s) but ${list.length} ${side} surface(s) were given`)
      }
      for (let i = 0; i < list.length; i++) {
        const surface = list[i]!
        const layout = tensors[i]!.layout
        const where = `${side} ${i} (${layout.name})`
        const state = nativeSurfaces.get(surface)
        if (state === undefined || state.env !== env) {
          return refuse(`${where}: surface ${surface.id} was not made by this hardware backend's createSurface`)
        }
        if (state.closed) return Effect.fail(new ClosedError({ op, resource: `surface ${surface.id} (${where})` }))
        if (surface.bytes.length < layout.allocSize) {
          return refuse(`${where}: surface ${surface.id} has ${surface.bytes.length} bytes, the layout needs allocSize ${layout.allocSize}`)
        }
        picked[side].push({ surface, state })
      }
    }
    return mapOne(env, c, op, (state) => (side, t, i) => {
      const p = picked[side][i]!
      state.retained.push(env.rt.cfRetain(p.state.surface))
      return { surface: p.state.surface, view: p.surface.bytes.subarray(0, t.layout.allocSize) }
    })
  })

const closed = (op: string, id: string) => new ClosedError({ op, resource: `model ${id}` })

/**
 * The synchronous evaluation of §7.5 (validate, fresh options dictionary for MIL, the evaluate calls); throws a
 * {@link Stop} with the typed error. Runs inside a native section.
 */
const evaluateNow = (env: NativeEnv, c: Compiled, r: RequestState, op: string): void => {
  const rt = env.rt
  if (!rt.bool(r.request, "validate")) throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
  // A fresh options dictionary per MIL evaluation; nil for packages (§7.5).
  const opts = c.state.kind === "mil" ? rt.mutableDictionary() : nil
  const { result, selector } = runCalls(rt, evaluateCalls(c.state, r.request, opts, true))
  rt.release(opts)
  if (!result.ok) throw new Stop(nativeError("eval", op, c.id, selector, result.error))
}

/** Synchronous evaluation of a mapped request (§7.5): validate, fresh options dictionary, evaluateWithQoS. */
const evalSync = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    return native<void, EvalError, "eval">(env, "eval", op, c.id, "evaluating", () => evaluateNow(env, c, r, op))
  })

/**
 * §13.2 EvalWithStats: attaches one perf-stats object to the request on first use and keeps it (released with the
 * request), so later calls allocate nothing new natively; evaluates as {@link evalSync}; then reads the stats.
 * Attaching and reading are best effort and never fail the call.
 */
const evalWithStats = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<EvalStats, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<EvalStats, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    return native<EvalStats, EvalError, "eval">(env, "eval", op, c.id, "evaluating with stats", () => {
      if (!r.perfStatsTried) {
        r.perfStatsTried = true
        r.perfStats = attachPerfStats(env.rt, r.request)
      }
      evaluateNow(env, c, r, op)
      return readEvalStats(env.rt, r.request)
    })
  })

/** §13.2 ProbeDiagnostics of the in-memory model (MIL) or the `_ANEModel` (package); ClosedError after close. */
const diagnostics = (env: NativeEnv, c: Compiled): Effect.Effect<ModelDiagnostics, ClosedError> =>
  Effect.suspend(() => {
    if (c.state.closed) return Effect.fail(closed("BackendModel.probeDiagnostics", c.id))
    const m = c.state
    // Reads never throw (telemetry.ts); the pool only scopes the autoreleased answers.
    return Effect.sync(() => env.rt.autoreleasePool(() => probeDiagnostics(env.rt, m.model, m.kind === "mil" ? "ANEInMemoryModel" : "ANEModel")))
  })

/** Holds the Node event loop open while an off-thread native call is pending (koffi does not). */
export const holdNode = (env: NativeEnv): void => {
  if (env.keepAlive.pending++ === 0) env.keepAlive.timer = setInterval(() => undefined, 1 << 30)
}
/** Releases one {@link holdNode}. */
export const releaseNode = (env: NativeEnv): void => {
  if (--env.keepAlive.pending === 0 && env.keepAlive.timer !== undefined) {
    clearInterval(env.keepAlive.timer)
    env.keepAlive.timer = undefined
  }
}

/**
 * Evaluation on a koffi worker thread (§7.6). The request cannot close while the call is pending (close waits);
 * interrupting only abandons the result. An NSError produced there is autoreleased on the worker thread, outside
 * any pool of ours.
 */
const evalAsync = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  // The closed check runs after the permit is taken: the scope may close while this evaluation queues.
  env.asyncPermits.withPermits(1)(Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    const rt = env.rt
    return native<Id, EvalError, "eval">(env, "eval", op, c.id, "preparing evaluation", () => {
      if (!rt.bool(r.request, "validate")) throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
      return c.state.kind === "mil" ? rt.mutableDictionary() : nil
    }).pipe(
      Effect.flatMap((opts) =>
        Effect.async<void, EvalError | ClosedError>((resume) => {
          if (r.closed) {
            rt.release(opts)
            return resume(Effect.fail(closed(op, c.id)))
          }
          r.begin()
          holdNode(env)
          runCallsAsync(rt, evaluateCalls(c.state, r.request, opts, true), (res, selector) => {
            rt.release(opts)
            releaseNode(env)
            r.end()
            if (res.ok) return resume(Effect.void)
            resume(Effect.fail("thrown" in res
              ? thrownError("eval", op, c.id, "evaluating off the JS thread", res.thrown)
              : nativeError("eval", op, c.id, selector, res.error)))
          })
        })
      )
    )
  }))

/** The native side of a shared event created by this backend. */
export interface NativeEventState {
  readonly event: Id
  readonly port: number
  closed: boolean
}

const nativeEvents = new WeakMap<BackendSharedEvent, NativeEventState>()

/** Records the native object behind a BackendSharedEvent, so shared-event evaluations can find it. */
export const registerEvent = (event: BackendSharedEvent, state: NativeEventState): void => {
  nativeEvents.set(event, state)
}

/**
 * Shared-event evaluation of a package model's request (§9.2): signal/wait events, a new request over the same
 * surfaces carrying them, option keys looked up with dlsym (literal fallback), validate, map (YES→NO), evaluate on
 * a worker thread (a wait event may need the JS thread to signal it), unmap, release. Marks the model so close
 * skips unmap/unload (§7.7).
 */
const evalWithEvents = (
  env: NativeEnv,
  c: Compiled,
  r: RequestState,
  spec: SharedEventEval
): Effect.Effect<void, EvalError | ClosedError | SharedEventRequiresPackageError> =>
  env.asyncPermits.withPermits(1)(Effect.suspend((): Effect.Effect<void, EvalError | ClosedError | SharedEventRequiresPackageError> => {
    const op = "BackendRequest.evalWithSharedEvents"
    if (r.closed) return Effect.fail(closed(op, c.id))
    if (c.state.kind !== "package") return Effect.fail(new SharedEventRequiresPackageError({ op, model: c.id }))
    const sides = [spec.wait, spec.signal]
    const states: Array<NativeEventState | undefined> = []
    for (const side of sides) {
      if (side === undefined) {
        states.push(undefined)
        continue
      }
      const state = nativeEvents.get(side.event)
      if (state === undefined) {
        return Effect.fail(new EvalError({ op, model: c.id, hint: "the shared event was not created by this hardware backend" }))
      }
      if (state.closed) return Effect.fail(new ClosedError({ op, resource: `shared event ${state.port}` }))
      states.push(state)
    }
    const rt = env.rt
    const m = c.state
    const held: Array<Id> = []
    let request: Id = nil
    let mapped = false
    let via: MapVia = "client"
    let cleaned = false
    const cleanup = () => {
      if (cleaned) return
      cleaned = true
      rt.autoreleasePool(() => {
        if (mapped) unmapRequest(m, request, via)
        rt.release(request)
        for (const o of held) rt.release(o)
      })
    }
    const prepare = native<Id, EvalError, "eval">(env, "eval", op, c.id, "preparing a shared-event evaluation", () => {
      m.sharedEventUsed = true
      const signals = rt.mutableArray()
      held.push(signals)
      const waits = rt.mutableArray()
      held.push(waits)
      const [waitState, signalState] = states
      if (spec.signal !== undefined && signalState !== undefined) {
        const symbol = c.layouts.outputs[0]?.symbolIndex ?? 0
        const signal = rt.id(
          rt.cls("_ANESharedSignalEvent"), "signalEventWithValue:symbolIndex:eventType:sharedEvent:", "id(uint64,uint32,int64,id)",
          spec.signal.value, symbol >= 0 ? symbol : 0, 5, signalState.event
        )
        if (signal === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedSignalEvent" }))
        rt.addObject(signals, signal)
      }
      if (spec.wait !== undefined && waitState !== undefined) {
        const wait = rt.id(rt.cls("_ANESharedWaitEvent"), "waitEventWithValue:sharedEvent:", "id(uint64,id)", spec.wait.value, waitState.event)
        if (wait === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedWaitEvent" }))
        rt.addObject(waits, wait)
      }
      const events = rt.id(rt.cls("_ANESharedEvents"), "sharedEventsWithSignalEvents:waitEvents:", "id(id,id)", signals, waits)
      if (events === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create ANESharedEvents" }))
      held.push(rt.retain(events))
      const [inArr, inIdx, outArr, outIdx] = r.arrays
      const txn = rt.numberU64(1n)
      const created = rt.id(
        rt.cls("_ANERequest"),
        "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
        "id(id,id,id,id,id,id,id,id,id)",
        inArr, inIdx, outArr, outIdx, nil, nil, rt.numberInt(0), events, txn
      )
      if (created === nil) throw new Stop(new EvalError({ op, model: c.id, hint: "failed to create request with shared events" }))
      request = rt.retain(created)
      if (rt.id(request, "transactionHandle") === nil) rt.send(request, "setTransactionHandle:", "void(id)", txn)
      const options = rt.mutableDictionary()
      held.push(options)
      const flag = (symbol: string, on: boolean | undefined) => {
        if (!on) return
        const key = rt.constant(symbol)
        rt.setObjectForKeyObject(options, key !== nil ? key : rt.nsString(symbol), rt.numberBool(true))
      }
      flag("kANEFDisableIOFencesUseSharedEventsKey", spec.options?.disableIoFencesUseSharedEvents)
      flag("kANEFEnableFWToFWSignal", spec.options?.enableFwToFwSignal)
      if (!rt.bool(request, "validate")) throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
      const map = mapWithFallback(m, request)
      if (!map.result.ok) throw new Stop(nativeError("eval", op, c.id, map.selector, failed(map.result)))
      mapped = true
      via = map.via
      return options
    })
    const run = (options: Id) =>
      Effect.async<void, EvalError>((resume) => {
        r.begin()
        holdNode(env)
        // Direct evaluation only when ANE_SHARED_USE_DIRECT is set, as §9.2 step 9 describes.
        const preferDirect = (process.env["ANE_SHARED_USE_DIRECT"] ?? "") !== ""
        // Cleanup waits for the native call even when the fiber was interrupted meanwhile.
        const finish = (error: EvalError | undefined) => {
          cleanup()
          releaseNode(env)
          r.end()
          resume(error === undefined ? Effect.void : Effect.fail(error))
        }
        runCallsAsync(rt, evaluateCalls(m, request, options, preferDirect), (res, selector) => {
          if (res.ok) return finish(undefined)
          finish("thrown" in res
            ? thrownError("eval", op, c.id, "evaluating off the JS thread", res.thrown)
            : nativeError("eval", op, c.id, selector, res.error))
        })
      })
    return prepare.pipe(
      Effect.tapErrorCause(() => Effect.sync(cleanup)),
      Effect.flatMap(run)
    )
  }))

const toBackendRequest = (env: NativeEnv, c: Compiled, r: RequestState): BackendRequest => ({
  inputs: r.inputs,
  outputs: r.outputs,
  eval: evalSync(env, c, r, "BackendRequest.eval"),
  evalAsync: evalAsync(env, c, r, "BackendRequest.evalAsync"),
  evalWithSharedEvents: (spec) => evalWithEvents(env, c, r, spec),
  evalWithStats: evalWithStats(env, c, r, "BackendRequest.evalWithStats")
})

const closeRequest = (r: RequestState) => Effect.zipRight(r.drained, Effect.sync(() => r.release()))

/**
 * Compile path B (§5): `_ANEModel modelAtURL:key:`, then compile, load (one retry) and unload through the client
 * (`+[_ANEClient sharedConnection]`, else the backend's client; retained for the model's life); layouts from the
 * model's attributes.
 */
const packageSteps = (env: NativeEnv, options: PackageCompileOptions, state: ModelState, op: string) =>
  Effect.gen(function*() {
    const rt = env.rt
    const id = options.path
    const mask = options.perfStatsMask
    const setMask = () => {
      if (mask !== 0) rt.send(state.model, "setPerfStatsMask:", "void(uint32)", mask)
    }
    const qosSig = "bool(id,id,uint32,err)"
    const t0 = process.hrtime.bigint()
    const first = yield* native<{ result: ErrorResult; compileNs: number; t1: bigint }, CompileFailure, "compile">(
      env, "compile", op, id, "building the package model", () => {
        state.url = rt.id(rt.id(rt.cls("NSURL"), "alloc"), "initFileURLWithPath:", "id(id)", rt.nsString(options.path))
        state.key = rt.id(rt.id(rt.cls("NSString"), "alloc"), "initWithString:", "id(id)", rt.nsString(options.modelKey))
        const model = rt.id(rt.cls("_ANEModel"), "modelAtURL:key:", "id(id,id)", state.url, state.key)
        if (model === nil) {
          throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: `failed to create model from ${options.path}` }))
        }
        state.model = rt.retain(model)
        env.live++
        state.counted = true
        setMask()
        // §5 step 6: `+sharedConnection` when non-nil, else the backend's client (§3 Open order).
        const cls = rt.cls("_ANEClient")
        let client = cls !== nil && rt.responds(cls, "sharedConnection") ? rt.id(cls, "sharedConnection") : nil
        if (client === nil) client = env.client()
        if (client === nil) {
          throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: `could not acquire an _ANEClient connection (${NO_CLIENT_HINT})` }))
        }
        state.client = rt.retain(client)
        state.clientMap = true
        state.directEval = rt.responds(client, DIRECT_EVAL)
        state.options = rt.mutableDictionary()
        const compiled = rt.sendError(client, "compileModel:options:qos:error:", qosSig, model, state.options, options.qos)
        if (!compiled.ok) throw new Stop(nativeError("compile", op, id, "compileModel:options:qos:error:", compiled.error))
        const t1 = process.hrtime.bigint()
        setMask()
        return {
          result: rt.sendError(client, "loadModel:options:qos:error:", qosSig, model, state.options, options.qos),
          compileNs: Number(t1 - t0),
          t1
        }
      })
    let load = first.result
    if (!load.ok) {
      yield* Effect.sleep(env.loadRetryMs)
      load = yield* native<ErrorResult, CompileFailure, "load">(env, "load", op, id, "loading the model", () => {
        setMask()
        return rt.sendError(state.client, "loadModel:options:qos:error:", qosSig, state.model, state.options, options.qos)
      })
    }
    if (!load.ok) return yield* nativeError("load", op, id, "loadModel:options:qos:error:", load.error)
    state.loaded = true
    const loadNs = ns(first.t1)
    const layouts = yield* native<NativeLayouts, CompileFailure, "compile">(env, "compile", op, id, "reading model layouts", () => {
      setMask()
      const parsed = parseLayouts(rt, rt.id(state.model, "modelAttributes"), op, id)
      if (parsed instanceof CompileError || parsed instanceof UnsupportedLayoutError) throw new Stop(parsed)
      return parsed
    })
    const stats = CompileStats.make({ compileNs: first.compileNs, loadNs, totalNs: ns(t0) })
    return { state, id, layouts, stats } satisfies Compiled
  })

/**
 * Compiles, loads and maps in-memory MIL (§4.2) or a package (§5) as a scoped model. On failure everything
 * acquired so far is released at once; on success it is released when the scope closes (requests unmapped, model
 * unloaded, objects released, surfaces freed).
 */
export const compileModel = (env: NativeEnv, options: MilCompileOptions | PackageCompileOptions) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const op = "Ane.compile"
      const state = new ModelState(env, options.qos, options._tag)
      const steps: Effect.Effect<Compiled, CompileFailure> = options._tag === "mil"
        ? compileSteps(env, options, state, op)
        : packageSteps(env, options, state, op)
      return steps.pipe(
        Effect.flatMap((c) => Effect.map(mapOne(env, c, op), (r0) => ({ c, r0 }))),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Effect.sync(() => state.release()) : Effect.void))
      )
    }),
    ({ c }) => Effect.zipRight(Effect.forEach([...c.state.requests], (r) => r.drained), Effect.sync(() => c.state.release()))
  ).pipe(
    Effect.map(({ c, r0 }): BackendModel => {
      env.compiles++
      const model: BackendModel = {
        id: c.id,
        kind: c.state.kind,
        inputs: c.layouts.inputs.map((t) => t.layout),
        outputs: c.layouts.outputs.map((t) => t.layout),
        stats: c.stats,
        capabilities: { sharedEvents: "package-only", asyncEval: true },
        request: toBackendRequest(env, c, r0),
        mapRequest: Effect.acquireRelease(
          Effect.suspend((): Effect.Effect<RequestState, MapError | ClosedError> =>
            c.state.closed ? Effect.fail(closed("BackendModel.mapRequest", c.id)) : mapOne(env, c, "BackendModel.mapRequest")
          ),
          closeRequest
        ).pipe(Effect.map((r) => toBackendRequest(env, c, r))),
        mapRequestOver: (surfaces) =>
          Effect.acquireRelease(mapOver(env, c, surfaces), closeRequest).pipe(Effect.map((r) => toBackendRequest(env, c, r))),
        probeDiagnostics: diagnostics(env, c)
      }
      nativeModels.set(model, { env, c, r0 })
      return model
    })
  )

/** The native state behind each BackendModel this module made, so a real-time task can reach its objects. */
const nativeModels = new WeakMap<BackendModel, { readonly env: NativeEnv; readonly c: Compiled; readonly r0: RequestState }>()

/**
 * Real-time evaluation of `model`'s request 0 through `client` (§14.5): `evaluateRealTimeWithModel:options:request:
 * error:` with the `_ANEModel` (the inner model of in-memory MIL), an empty options dictionary and the request.
 * EvalError when `model` was not compiled by the backend of `env`; ClosedError once the model is closed.
 */
export const evalRealTime = (env: NativeEnv, model: BackendModel, client: Id, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    const entry = nativeModels.get(model)
    if (entry === undefined || entry.env !== env) {
      return Effect.fail(new EvalError({
        op,
        model: model.id,
        hint: "the model was not compiled by this hardware backend; compile it with the backend the real-time task was begun on"
      }))
    }
    const { c, r0 } = entry
    if (c.state.closed || r0.closed) return Effect.fail(closed(op, c.id))
    const rt = env.rt
    return native<void, EvalError, "eval">(env, "eval", op, c.id, "evaluating in real time", () => {
      const options = rt.mutableDictionary()
      let result: ErrorResult
      try {
        result = rt.sendError(client, REAL_TIME_EVAL, "bool(id,id,id,err)", clientModel(c.state), options, r0.request)
      } finally {
        rt.release(options)
      }
      if (!result.ok) throw new Stop(nativeError("eval", op, c.id, REAL_TIME_EVAL, result.error))
    })
  })

let nextSurfaceId = 1

/**
 * A standalone IOSurface of at least `bytes` bytes (one fp16 row padded to 64 bytes) with a zero-copy view of
 * exactly `bytes`; freed when the scope closes.
 */
export const standaloneSurface = (env: NativeEnv, bytes: number): Effect.Effect<BackendSurface, MapError, Scope.Scope> =>
  Effect.acquireRelease(
    native<NativeSurfaceState & { view: Uint8Array }, MapError, "map">(env, "map", "Ane.createSurface", "surface", "creating a surface", () => {
      const width = Math.ceil(bytes / 2)
      const rowStride = Math.ceil((width * 2) / 64) * 64
      const layout = { width, height: 1, channels: 1, elemSize: 2, rowStride, allocSize: rowStride } as const
      const { surface, view } = createSurface(env, layout, "Ane.createSurface", "surface")
      return { env, surface, closed: false, view: view.subarray(0, bytes) }
    }),
    (state) =>
      Effect.sync(() => {
        // A request mapped over this surface keeps its own retain; the memory goes with the last one.
        state.closed = true
        env.rt.cfRelease(state.surface)
        env.live--
      })
  ).pipe(Effect.map((state) => {
    const surface: BackendSurface = { id: nextSurfaceId++, bytes: state.view }
    nativeSurfaces.set(surface, state)
    return surface
  }))
