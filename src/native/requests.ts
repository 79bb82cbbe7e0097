/**
 * `_ANERequest`s (spec/native-protocol.md §7.2–§7.4): surfaces wrapped as `_ANEIOSurfaceObject`s, the 9-argument
 * factory with its 7-argument fallback (each asked with `respondsToSelector:` first), transaction handle 1, and
 * mapping; also requests over caller-owned surfaces. Every optional selector is asked for before it is sent: an
 * unanswered one raises an Objective-C exception that ends the process.
 */
import * as Effect from "effect/Effect"
import type { CompileStats } from "../schema/CompileStats.js"
import { ClosedError, MapError } from "../schema/errors.js"
import type { BackendSurface } from "../services/Backend.js"
import { closed, native, type NativeEnv, Stop } from "./env.js"
import { nativeError } from "./errors.js"
import type { NativeLayouts, NativeTensor } from "./layouts.js"
import { type Id, nil, type Objc } from "./objc.js"
import { mapWithFallback, type ModelState, RequestState } from "./state.js"
import { createSurface, nativeSurfaces, type NativeSurfaceState } from "./surfaces.js"

/** The request factory with shared events and a transaction handle (§7.3 step 4). */
export const REQUEST_9 =
  "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:"
/** Its fallback on older frameworks (§7.3 step 5). */
export const REQUEST_7 = "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:"

/** Everything a compiled model needs to build requests and evaluate. */
export interface Compiled {
  readonly state: ModelState
  readonly id: string
  readonly layouts: NativeLayouts
  readonly stats: CompileStats
}

/** Where a request's surface for one tensor comes from; records in `state` what must be released with it. */
type SurfaceSource = (side: "input" | "output", tensor: NativeTensor, index: number) => { readonly surface: Id; readonly view: Uint8Array }

/** A new IOSurface per tensor (§7.1), owned by the request. */
const ownSurfaces = (env: NativeEnv, state: RequestState, op: string, id: string): SurfaceSource => (_side, t) => {
  const made = createSurface(env, t.layout, op, id)
  state.surfaces.push(made.surface)
  return made
}

/** Sends `selector` with `send` when `receiver` answers it; nil otherwise. */
const ifAnswered = (rt: Objc, receiver: Id, selector: string, send: () => Id): Id =>
  receiver !== nil && rt.responds(receiver, selector) ? send() : nil

/**
 * `+[_ANERequest …]` with the 9-argument factory when the class answers it, else the 7-argument one (only without
 * shared events); nil when neither is answered or both answer nil. Call inside a pool (+0 result).
 */
export const makeRequest = (
  rt: Objc,
  arrays: readonly [Id, Id, Id, Id],
  events: Id,
  transaction: Id
): Id => {
  const cls = rt.cls("_ANERequest")
  const [inArr, inIdx, outArr, outIdx] = arrays
  const procedure = rt.numberInt(0)
  const full = ifAnswered(rt, cls, REQUEST_9, () =>
    rt.id(cls, REQUEST_9, "id(id,id,id,id,id,id,id,id,id)", inArr, inIdx, outArr, outIdx, nil, nil, procedure, events, transaction))
  if (full !== nil || events !== nil) return full
  return ifAnswered(rt, cls, REQUEST_7, () =>
    rt.id(cls, REQUEST_7, "id(id,id,id,id,id,id,id)", inArr, inIdx, outArr, outIdx, nil, nil, procedure))
}

/** Sets transaction handle `transaction` when the request has none (§7.3 step 7); skipped where not answered. */
export const ensureTransaction = (rt: Objc, request: Id, transaction: Id): void => {
  if (!rt.responds(request, "transactionHandle") || !rt.responds(request, "setTransactionHandle:")) return
  if (rt.id(request, "transactionHandle") === nil) rt.send(request, "setTransactionHandle:", "void(id)", transaction)
}

/**
 * Builds an `_ANERequest` over the surfaces `source` gives (§7.3), validates it when asked, and maps it (§7.4;
 * request 0 of in-memory MIL through the model). Must run inside a pool; on a throw the caller releases `state`.
 */
const buildRequest = (
  env: NativeEnv,
  m: ModelState,
  layouts: NativeLayouts,
  state: RequestState,
  op: string,
  id: string,
  first: boolean,
  source: SurfaceSource = ownSurfaces(env, state, op, id),
  validate = false
): void => {
  const rt = env.rt
  const side = (name: "input" | "output", tensors: ReadonlyArray<NativeTensor>, views: Array<Uint8Array>, surfaces: Array<Id>) => {
    const objects = rt.mutableArray()
    state.arrays.push(objects)
    const indices = rt.mutableArray()
    state.arrays.push(indices)
    tensors.forEach((t, i) => {
      const { surface, view } = source(name, t, i)
      views.push(view)
      surfaces.push(surface)
      const wrapped = rt.id(rt.cls("_ANEIOSurfaceObject"), "objectWithIOSurface:", "id(ptr)", surface)
      if (wrapped === nil) throw new Stop(new MapError({ op, model: id, hint: "failed to wrap an IOSurface (_ANEIOSurfaceObject)" }))
      rt.addObject(objects, wrapped)
      rt.addObject(indices, rt.numberInt(t.symbolIndex >= 0 ? t.symbolIndex : i))
    })
    return [objects, indices] as const
  }
  const [inArr, inIdx] = side("input", layouts.inputs, state.inputs, state.inputSurfaces)
  const [outArr, outIdx] = side("output", layouts.outputs, state.outputs, state.outputSurfaces)
  // Every request uses transaction handle 1, as the engine's own clients do.
  const txn = rt.numberU64(1n)
  const request = makeRequest(rt, [inArr, inIdx, outArr, outIdx], nil, txn)
  if (request === nil) throw new Stop(new MapError({ op, model: id, hint: "failed to create request (_ANERequest)" }))
  state.request = rt.retain(request)
  env.live++
  ensureTransaction(rt, request, txn)
  state.validates = rt.responds(request, "validate")
  if (validate && state.validates && !rt.bool(request, "validate")) {
    throw new Stop(new MapError({ op, model: id, hint: "request validation failed" }))
  }
  const mapped = mapWithFallback(m, request, first)
  if (!mapped.result.ok) throw new Stop(nativeError("map", op, id, mapped.selector, mapped.result.error))
  state.mapped = true
  state.via = mapped.via
  m.requests.add(state)
}

/**
 * Maps one request (over `source`'s surfaces, else its own); `first` for the model's own request 0. Releases what
 * it built when it fails.
 */
export const mapOne = (
  env: NativeEnv,
  c: Compiled,
  op: string,
  first: boolean,
  over?: (state: RequestState) => SurfaceSource
): Effect.Effect<RequestState, MapError> =>
  Effect.suspend(() => {
    const state = new RequestState(env, c.state)
    return native<RequestState, MapError, "map">(env, "map", op, c.id, "mapping a request", () => {
      if (over === undefined) buildRequest(env, c.state, c.layouts, state, op, c.id, first)
      else buildRequest(env, c.state, c.layouts, state, op, c.id, first, over(state), true)
      return state
    }).pipe(Effect.tapError(() => Effect.sync(() => state.release())))
  })

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
export const mapOver = (env: NativeEnv, c: Compiled, given: SurfacesOver): Effect.Effect<RequestState, MapError | ClosedError> =>
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
    return mapOne(env, c, op, false, (state) => (side, t, i) => {
      const p = picked[side][i]!
      state.retained.push(env.rt.cfRetain(p.state.surface))
      return { surface: p.state.surface, view: p.surface.bytes.subarray(0, t.layout.allocSize) }
    })
  })
