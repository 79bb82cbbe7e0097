/**
 * Compile paths A (in-memory MIL, spec/native-protocol.md §4) and B (packages, §5) and the scoped model they make:
 * request 0 and extra requests (./requests.ts), evaluation (./evaluate.ts), shared-event evaluation
 * (./sharedEventEval.ts), release on close (./state.ts), and the model side of §14.5 real-time evaluation. Every
 * object stored is retained and released on close; every synchronous native section runs inside its own
 * autorelease pool (§14.1).
 */
import { mkdirSync } from "node:fs"
import { basename, dirname, isAbsolute, join } from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { checkBlobFilePaths, resolveInside, writeFileNoFollow } from "../backend/weightPath.js"
import type { BackendModel, BackendRequest } from "../services/Backend.js"
import { DEFAULT_QOS, type MilCompileOptions, type PackageCompileOptions } from "../schema/CompileOptions.js"
import { CompileStats } from "../schema/CompileStats.js"
import { ClosedError, CompileError, type CompileFailure, EvalError, MapError, UnsupportedLayoutError } from "../schema/errors.js"
import { NO_CLIENT_HINT } from "./client.js"
import { closed, native, type NativeEnv, Stop } from "./env.js"
import { nativeError } from "./errors.js"
import { diagnostics, evalAsync, evalSync, evalWithStats, requestAccess } from "./evaluate.js"
import { type NativeLayouts, parseLayouts } from "./layouts.js"
import { nativePipelining } from "./pipelinedIO.js"
import { type ErrorResult, type Id, nil } from "./objc.js"
import { type Compiled, mapOne, mapOver } from "./requests.js"
import { evalWithEvents } from "./sharedEventEval.js"
import { CLIENT_MAP, CLIENT_UNMAP, clientModel, DIRECT_EVAL, ModelState, type RequestState, useFolder } from "./state.js"

export type { NativeEnv } from "./env.js"

const QOS_SIG = "bool(uint32,id,err)"

/** The client's real-time evaluate selector (§14.5). */
export const REAL_TIME_EVAL = "evaluateRealTimeWithModel:options:request:error:"

/**
 * The QoS the framework is asked for: 0 (QOS_CLASS_UNSPECIFIED) becomes 21 (QOS_CLASS_DEFAULT), as the Go package
 * does before any compile, load or evaluate (§4 prelude).
 */
export const effectiveQos = (qos: number): number => (qos === 0 ? DEFAULT_QOS : qos)

const ns = (from: bigint) => Number(process.hrtime.bigint() - from)

/**
 * The folder the in-memory compiler reads `model.mil` and the weights from (§4.3): the `tempDir` option when the
 * backend was given one; else the model's `-localModelPath` when it answers it (unverified on a Mac: taken to be
 * the model's own folder, so it is used only when it is absolute and named by the hex identifier: this folder is
 * removed when the model closes); else Foundation's `NSTemporaryDirectory()` joined with the hex identifier. Never
 * `os.tmpdir()`: under sudo, launchd, some CI runners or `TMPDIR=…` it is not the folder the framework reads.
 */
const modelFolder = (env: NativeEnv, model: Id, hex: string): string => {
  if (env.tempDirOverride !== undefined) return join(env.tempDirOverride(), hex)
  const rt = env.rt
  if (rt.responds(model, "localModelPath")) {
    const local = rt.string(rt.id(model, "localModelPath")).replace(/\/+$/, "")
    if (isAbsolute(local) && basename(local) === hex) return local
  }
  return join(env.tempDir(), hex)
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
      if (mask !== 0 && rt.responds(target, "setPerfStatsMask:")) rt.send(target, "setPerfStatsMask:", "void(uint32)", mask)
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
          state.dir = modelFolder(env, model, hex)
          useFolder(state.dir)
          refused = prepopulate(state.dir, text, options, op, id)
        } catch (cause) {
          throw new Stop(new CompileError({ op, model: id, diagnostics: [], hint: `pre-populate temp dir: ${String(cause)}`, cause }))
        }
        if (refused !== undefined) throw new Stop(refused)
        state.options = rt.mutableDictionary()
        const compiled = rt.sendError(model, "compileWithQoS:options:error:", QOS_SIG, state.qos, state.options)
        if (!compiled.ok) throw new Stop(nativeError("compile", op, id, "compileWithQoS:options:error:", compiled.error))
        const t1 = process.hrtime.bigint()
        const compileNs = Number(t1 - t0)
        // Compile keeps the mask but load clears it (§14.3).
        setMask(model)
        return { id, result: rt.sendError(model, "loadWithQoS:options:error:", QOS_SIG, state.qos, state.options), compileNs, t1 }
      })
    const { id } = first
    let load = first.result
    if (!load.ok) {
      // Load can fail transiently: one retry after a pause.
      yield* Effect.sleep(env.loadRetryMs)
      load = yield* native<ErrorResult, CompileFailure, "load">(env, "load", op, id, "loading the model", () => {
        setMask(state.model)
        return rt.sendError(state.model, "loadWithQoS:options:error:", QOS_SIG, state.qos, state.options)
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
const toBackendRequest = (env: NativeEnv, c: Compiled, r: RequestState): BackendRequest => ({
  inputs: r.inputs,
  outputs: r.outputs,
  eval: evalSync(env, c, r, "BackendRequest.eval"),
  evalAsync: evalAsync(env, c, r, "BackendRequest.evalAsync"),
  evalWithSharedEvents: (spec) => evalWithEvents(env, c, r, spec),
  evalWithStats: evalWithStats(env, c, r, "BackendRequest.evalWithStats"),
  access: requestAccess(env, r)
})

/** Waits until no eval thread uses the request's surfaces. */
const drained = (r: RequestState) => Effect.promise(() => r.drained())

const closeRequest = (r: RequestState) => Effect.zipRight(drained(r), Effect.sync(() => r.release()))

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
      if (mask !== 0 && rt.responds(state.model, "setPerfStatsMask:")) rt.send(state.model, "setPerfStatsMask:", "void(uint32)", mask)
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
        const compiled = rt.sendError(client, "compileModel:options:qos:error:", qosSig, model, state.options, state.qos)
        if (!compiled.ok) throw new Stop(nativeError("compile", op, id, "compileModel:options:qos:error:", compiled.error))
        const t1 = process.hrtime.bigint()
        setMask()
        return {
          result: rt.sendError(client, "loadModel:options:qos:error:", qosSig, model, state.options, state.qos),
          compileNs: Number(t1 - t0),
          t1
        }
      })
    let load = first.result
    if (!load.ok) {
      yield* Effect.sleep(env.loadRetryMs)
      load = yield* native<ErrorResult, CompileFailure, "load">(env, "load", op, id, "loading the model", () => {
        setMask()
        return rt.sendError(state.client, "loadModel:options:qos:error:", qosSig, state.model, state.options, state.qos)
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
      const state = new ModelState(env, effectiveQos(options.qos), options._tag)
      const steps: Effect.Effect<Compiled, CompileFailure> = options._tag === "mil"
        ? compileSteps(env, options, state, op)
        : packageSteps(env, options, state, op)
      return steps.pipe(
        Effect.flatMap((c) => Effect.map(mapOne(env, c, op, true), (r0) => ({ c, r0 }))),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Effect.sync(() => state.release()) : Effect.void))
      )
    }),
    ({ c }) => Effect.zipRight(Effect.forEach([...c.state.requests], drained), Effect.sync(() => c.state.release()))
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
            c.state.closed ? Effect.fail(closed("BackendModel.mapRequest", c.id)) : mapOne(env, c, "BackendModel.mapRequest", false)
          ),
          closeRequest
        ).pipe(Effect.map((r) => toBackendRequest(env, c, r))),
        mapRequestOver: (surfaces) =>
          Effect.acquireRelease(mapOver(env, c, surfaces), closeRequest).pipe(Effect.map((r) => toBackendRequest(env, c, r))),
        probeDiagnostics: diagnostics(env, c),
        ...nativePipelining(env, c, r0)
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
