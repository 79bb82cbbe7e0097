/**
 * Compile path A (in-memory MIL, spec/native-protocol.md §4), IOSurfaces and requests (§7.1–§7.4), evaluation
 * (§7.5–§7.6) and release on close (§7.7) over the {@link Objc} binding. Every object stored is retained and
 * released on close; every synchronous native section runs inside its own autorelease pool (§14.1).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { Effect, Exit } from "effect"
import type { BackendModel, BackendRequest } from "../services/Backend.js"
import type { MilCompileOptions } from "../schema/CompileOptions.js"
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
import type { TensorLayout } from "../schema/TensorLayout.js"
import { type NativeStage, nativeError, type StageErrors, thrownError } from "./errors.js"
import { type NativeLayouts, type NativeTensor, parseLayouts } from "./layouts.js"
import { type ErrorResult, type Id, nil, type Objc } from "./objc.js"

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
  readonly surfaces: Array<Id> = []
  readonly arrays: Array<Id> = []
  readonly inputs: Array<Uint8Array> = []
  readonly outputs: Array<Uint8Array> = []
  request: Id = nil
  mapped = false
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
        rt.send(this.model.model, "unmapIOSurfacesWithRequest:", "void(id)", this.request)
        this.mapped = false
      }
      if (this.request !== nil) {
        rt.release(this.request)
        this.env.live--
      }
      for (const a of this.arrays) rt.release(a)
      for (const s of this.surfaces) {
        rt.cfRelease(s)
        this.env.live--
      }
    })
    this.model.requests.delete(this)
  }
}

/** The Objective-C objects behind one compiled model. */
class ModelState {
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

  constructor(readonly env: NativeEnv, readonly qos: number) {}

  /** Unmaps every request, unloads, releases every object and removes the temporary directory; idempotent. */
  release(): void {
    if (this.closed) return
    this.closed = true
    for (const r of [...this.requests]) r.release()
    const rt = this.env.rt
    rt.autoreleasePool(() => {
      if (this.loaded) {
        // Unload errors are ignored, as on every close path (§7.7).
        rt.sendError(this.model, "unloadWithQoS:error:", "bool(uint32,err)", this.qos)
        this.loaded = false
      }
      for (const o of [this.inner, this.model, this.descriptor, this.options, this.weights, this.milData]) rt.release(o)
    })
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
    if (this.counted) this.env.live--
  }
}

const MODEL_PATH_PREFIX = "@model_path/"

/** Writes `model.mil` and the weight files where the in-memory compiler expects them (§4.3). */
const prepopulate = (dir: string, text: Uint8Array, options: MilCompileOptions): void => {
  mkdirSync(join(dir, "weights"), { recursive: true, mode: 0o755 })
  writeFileSync(join(dir, "model.mil"), text, { mode: 0o644 })
  for (const w of options.weights) {
    const rel = w.path.length > MODEL_PATH_PREFIX.length && w.path.startsWith(MODEL_PATH_PREFIX)
      ? w.path.slice(MODEL_PATH_PREFIX.length)
      : w.path
    const target = join(dir, rel)
    mkdirSync(dirname(target), { recursive: true, mode: 0o755 })
    writeFileSync(target, w.bytes, { mode: 0o644 })
  }
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

/**
 * Builds surfaces and an `_ANERequest` for the model's tensors (§7.3) and maps it with the cacheInference YES→NO
 * fallback (§7.4). Must run inside a pool; on a throw the caller releases `state`.
 */
const buildRequest = (env: NativeEnv, m: ModelState, layouts: NativeLayouts, state: RequestState, op: string, id: string): void => {
  const rt = env.rt
  const side = (tensors: ReadonlyArray<NativeTensor>, views: Array<Uint8Array>) => {
    const objects = rt.mutableArray()
    state.arrays.push(objects)
    const indices = rt.mutableArray()
    state.arrays.push(indices)
    tensors.forEach((t, i) => {
      const { surface, view } = createSurface(env, t.layout, op, id)
      state.surfaces.push(surface)
      views.push(view)
      const wrapped = rt.id(rt.cls("_ANEIOSurfaceObject"), "objectWithIOSurface:", "id(ptr)", surface)
      if (wrapped === nil) throw new Stop(new MapError({ op, model: id, hint: "failed to wrap an IOSurface (_ANEIOSurfaceObject)" }))
      rt.addObject(objects, wrapped)
      rt.addObject(indices, rt.numberInt(t.symbolIndex >= 0 ? t.symbolIndex : i))
    })
    return [objects, indices] as const
  }
  const [inArr, inIdx] = side(layouts.inputs, state.inputs)
  const [outArr, outIdx] = side(layouts.outputs, state.outputs)
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
  const mapSig = "bool(id,bool,err)"
  const mapSel = "mapIOSurfacesWithRequest:cacheInference:error:"
  let mapped = rt.sendError(m.model, mapSel, mapSig, request, true)
  if (!mapped.ok) mapped = rt.sendError(m.model, mapSel, mapSig, request, false)
  if (!mapped.ok) throw new Stop(nativeError("map", op, id, mapSel, failed(mapped)))
  state.mapped = true
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
        try {
          state.dir = join(env.tempDir(), hex)
          prepopulate(state.dir, text, options)
        } catch (cause) {
          throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: `pre-populate temp dir: ${String(cause)}`, cause }))
        }
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
      const parsed = parseLayouts(rt, rt.id(inner, "modelAttributes"), op, id)
      if (parsed instanceof CompileError || parsed instanceof UnsupportedLayoutError) throw new Stop(parsed)
      return parsed
    })
    const stats = CompileStats.make({ compileNs: first.compileNs, loadNs, totalNs: ns(t0) })
    return { state, id, layouts, stats } satisfies Compiled
  })

/** Maps one request; releases what it built when it fails. */
const mapOne = (env: NativeEnv, c: Compiled, op: string): Effect.Effect<RequestState, MapError> =>
  Effect.suspend(() => {
    const state = new RequestState(env, c.state)
    return native<RequestState, MapError, "map">(env, "map", op, c.id, "mapping a request", () => {
      buildRequest(env, c.state, c.layouts, state, op, c.id)
      return state
    }).pipe(Effect.tapError(() => Effect.sync(() => state.release())))
  })

const closed = (op: string, id: string) => new ClosedError({ op, resource: `model ${id}` })

/** Synchronous evaluation of a mapped request (§7.5): validate, fresh options dictionary, evaluateWithQoS. */
const evalSync = (env: NativeEnv, c: Compiled, r: RequestState, op: string): Effect.Effect<void, EvalError | ClosedError> =>
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    return native<void, EvalError, "eval">(env, "eval", op, c.id, "evaluating", () => {
      const rt = env.rt
      if (!rt.bool(r.request, "validate")) throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
      const opts = rt.mutableDictionary()
      const result = rt.sendError(c.state.model, "evaluateWithQoS:options:request:error:", "bool(uint32,id,id,err)", c.state.qos, opts, r.request)
      rt.release(opts)
      if (!result.ok) throw new Stop(nativeError("eval", op, c.id, "evaluateWithQoS:options:request:error:", result.error))
    })
  })

const holdNode = (env: NativeEnv) => {
  if (env.keepAlive.pending++ === 0) env.keepAlive.timer = setInterval(() => undefined, 1 << 30)
}
const releaseNode = (env: NativeEnv) => {
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
  Effect.suspend((): Effect.Effect<void, EvalError | ClosedError> => {
    if (r.closed) return Effect.fail(closed(op, c.id))
    const rt = env.rt
    return native<Id, EvalError, "eval">(env, "eval", op, c.id, "preparing evaluation", () => {
      if (!rt.bool(r.request, "validate")) throw new Stop(new EvalError({ op, model: c.id, hint: "request validation failed" }))
      return rt.mutableDictionary()
    }).pipe(
      Effect.flatMap((opts) =>
        Effect.async<void, EvalError>((resume) => {
          r.begin()
          holdNode(env)
          const sel = "evaluateWithQoS:options:request:error:"
          try {
            rt.sendErrorAsync(c.state.model, sel, "bool(uint32,id,id,err)", [c.state.qos, opts, r.request], (res) => {
              rt.release(opts)
              releaseNode(env)
              r.end()
              if (res.ok) return resume(Effect.void)
              resume(Effect.fail("thrown" in res
                ? thrownError("eval", op, c.id, "evaluating off the JS thread", res.thrown)
                : nativeError("eval", op, c.id, sel, res.error)))
            })
          } catch (cause) {
            rt.release(opts)
            releaseNode(env)
            r.end()
            resume(Effect.fail(thrownError("eval", op, c.id, "evaluating off the JS thread", cause)))
          }
        })
      ),
      env.asyncPermits.withPermits(1)
    )
  })

const toBackendRequest = (env: NativeEnv, c: Compiled, r: RequestState): BackendRequest => ({
  inputs: r.inputs,
  outputs: r.outputs,
  eval: evalSync(env, c, r, "BackendRequest.eval"),
  evalAsync: evalAsync(env, c, r, "BackendRequest.evalAsync"),
  evalWithSharedEvents: () =>
    Effect.suspend((): Effect.Effect<never, ClosedError | SharedEventRequiresPackageError> =>
      r.closed
        ? Effect.fail(closed("BackendRequest.evalWithSharedEvents", c.id))
        : Effect.fail(new SharedEventRequiresPackageError({ op: "BackendRequest.evalWithSharedEvents", model: c.id }))
    )
})

const closeRequest = (r: RequestState) => Effect.zipRight(r.drained, Effect.sync(() => r.release()))

/**
 * Compiles, loads and maps in-memory MIL (§4.2) as a scoped model. On failure everything acquired so far is
 * released at once; on success it is released when the scope closes (requests unmapped, model unloaded, objects
 * released, surfaces freed).
 */
export const compileMil = (env: NativeEnv, options: MilCompileOptions) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const op = "Ane.compile"
      const state = new ModelState(env, options.qos)
      return compileSteps(env, options, state, op).pipe(
        Effect.flatMap((c) => Effect.map(mapOne(env, c, op), (r0) => ({ c, r0 }))),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Effect.sync(() => state.release()) : Effect.void))
      )
    }),
    ({ c }) => Effect.zipRight(Effect.forEach([...c.state.requests], (r) => r.drained), Effect.sync(() => c.state.release()))
  ).pipe(
    Effect.map(({ c, r0 }): BackendModel => {
      env.compiles++
      return {
        id: c.id,
        kind: "mil",
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
        ).pipe(Effect.map((r) => toBackendRequest(env, c, r)))
      }
    })
  )

let nextSurfaceId = 1

/**
 * A standalone IOSurface of at least `bytes` bytes (one fp16 row padded to 64 bytes) with a zero-copy view of
 * exactly `bytes`; freed when the scope closes.
 */
export const standaloneSurface = (env: NativeEnv, bytes: number) =>
  Effect.acquireRelease(
    native<{ surface: Id; view: Uint8Array }, MapError, "map">(env, "map", "Ane.createSurface", "surface", "creating a surface", () => {
      const width = Math.ceil(bytes / 2)
      const rowStride = Math.ceil((width * 2) / 64) * 64
      const layout = { width, height: 1, channels: 1, elemSize: 2, rowStride, allocSize: rowStride } as const
      const { surface, view } = createSurface(env, layout, "Ane.createSurface", "surface")
      return { surface, view: view.subarray(0, bytes) }
    }),
    ({ surface }) =>
      Effect.sync(() => {
        env.rt.cfRelease(surface)
        env.live--
      })
  ).pipe(Effect.map(({ view }) => ({ id: nextSurfaceId++, bytes: view })))
