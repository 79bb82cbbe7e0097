/**
 * The Objective-C objects behind one compiled model and its requests, and how they are given back (§7.7): every
 * object stored is retained and released on close, each release path inside its own autorelease pool.
 */
import { rmSync } from "node:fs"
import type { ErrorResult, Id } from "./objc.js"
import { nil } from "./objc.js"
import type { NativeEnv } from "./env.js"

/** Which object a request was mapped through: the client with the `_ANEModel`, or the in-memory model. */
export type MapVia = "client" | "model"

/** The client's map selector (§7.4). */
export const CLIENT_MAP = "mapIOSurfacesWithModel:request:cacheInference:error:"
/** The client's unmap selector. */
export const CLIENT_UNMAP = "unmapIOSurfacesWithModel:request:"
/** The in-memory model's map selector (request 0 of in-memory MIL, §4.2 step 15). */
export const MODEL_MAP = "mapIOSurfacesWithRequest:cacheInference:error:"
/** The client's direct evaluation (§7.5). */
export const DIRECT_EVAL = "doEvaluateDirectWithModel:options:request:qos:error:"

/** Users of each shared `<tmp>/<hex>` folder: two live models of one program share it (the hex is a content hash). */
const folderUsers = new Map<string, number>()

/** Counts one more user of `dir`. */
export const useFolder = (dir: string): void => {
  folderUsers.set(dir, (folderUsers.get(dir) ?? 0) + 1)
}

/** Drops one user of `dir`; removes the folder when that was the last. */
export const leaveFolder = (dir: string): void => {
  const n = (folderUsers.get(dir) ?? 1) - 1
  if (n > 0) {
    folderUsers.set(dir, n)
    return
  }
  folderUsers.delete(dir)
  rmSync(dir, { recursive: true, force: true })
}

/** Users a folder has now (0 when none); tests read it. */
export const folderUserCount = (dir: string): number => folderUsers.get(dir) ?? 0

/** The objects and surfaces behind one request. */
export class RequestState {
  /** Surfaces this request created (one live handle each). */
  readonly surfaces: Array<Id> = []
  /** The IOSurface behind each input and output view, in order (own or caller-owned), for locked CPU access. */
  readonly inputSurfaces: Array<Id> = []
  readonly outputSurfaces: Array<Id> = []
  /** Caller-owned surfaces CFRetained for the request's life (mapRequestOver); not handles of their own. */
  readonly retained: Array<Id> = []
  readonly arrays: Array<Id> = []
  readonly inputs: Array<Uint8Array> = []
  readonly outputs: Array<Uint8Array> = []
  request: Id = nil
  /** Whether the request answers `-validate` (asked once, when it is built). */
  validates = false
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
  readonly drained = (): Promise<void> =>
    this.pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.idle.push(resolve))

  /** Unmap, then release the request, its arrays and its surfaces (§7.7); idempotent, never fails. */
  release(): void {
    if (this.closed) return
    this.closed = true
    const rt = this.env.rt
    // After a shared-event evaluation a package model's requests are neither unmapped nor released (§7.7, §14.3:
    // the Go package keeps them on purpose, releasing them crashed inside the framework).
    const keep = this.model.kind === "package" && this.model.sharedEventUsed
    rt.autoreleasePool(() => {
      if (this.mapped) {
        if (!keep) unmapRequest(this.model, this.request, this.via)
        this.mapped = false
      }
      if (this.request !== nil) {
        if (keep) this.env.keptAfterSharedEvents++
        else rt.release(this.request)
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

/** The objects behind one compiled model. */
export class ModelState {
  url: Id = nil
  key: Id = nil
  client: Id = nil
  /** The client answers the map/unmap selectors (extra requests of in-memory models map through it then). */
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
  /** The `<tmp>/<hex>` folder written for the compiler; shared with other live models of the same program. */
  dir: string | undefined
  closed = false
  counted = false
  readonly requests = new Set<RequestState>()

  constructor(readonly env: NativeEnv, readonly qos: number, readonly kind: "mil" | "package") {}

  /**
   * Unmaps every request, unloads, releases every object and leaves the temporary folder; idempotent. A package
   * model that ran a shared-event evaluation is neither unloaded nor released (§7.7: that crashed in the framework).
   */
  release(): void {
    if (this.closed) return
    this.closed = true
    for (const r of [...this.requests]) r.release()
    const rt = this.env.rt
    const keep = this.kind === "package" && this.sharedEventUsed
    rt.autoreleasePool(() => {
      if (this.loaded) {
        // Unload errors are ignored, as on every close path (§7.7).
        if (this.kind === "mil") rt.sendError(this.model, "unloadWithQoS:error:", "bool(uint32,err)", this.qos)
        else if (!keep) {
          rt.sendError(this.client, "unloadModel:options:qos:error:", "bool(id,id,uint32,err)", this.model, nil, this.qos)
        }
        this.loaded = false
      }
      if (keep) this.env.keptAfterSharedEvents++
      for (const o of [this.inner, this.model, this.descriptor, this.options, this.weights, this.milData, this.url, this.key, this.client]) {
        // The Go package deliberately keeps the model (and its client) of a shared-event evaluation alive.
        if (keep && (o === this.model || o === this.client)) continue
        rt.release(o)
      }
    })
    if (this.dir !== undefined) leaveFolder(this.dir)
    if (this.counted) this.env.live--
  }
}

/** The `_ANEModel` the client selectors take: the inner model of an in-memory model, or the package model. */
export const clientModel = (m: ModelState): Id => (m.kind === "mil" ? m.inner : m.model)

const mapVia = (m: ModelState, request: Id, cacheInference: boolean, via: MapVia): ErrorResult =>
  via === "model"
    ? m.env.rt.sendError(m.model, MODEL_MAP, "bool(id,bool,err)", request, cacheInference)
    : m.env.rt.sendError(m.client, CLIENT_MAP, "bool(id,id,bool,err)", clientModel(m), request, cacheInference)

/**
 * Maps with the fallbacks of §7.4. Packages: through the client, YES then NO. In-memory request 0 (`first`): through
 * the in-memory model, YES then NO, as the Go package maps it (§4.2 step 15). Extra in-memory requests: client first
 * when it answers both map selectors (errata D11: client YES, model YES, client NO, model NO), else the model.
 */
export const mapWithFallback = (
  m: ModelState,
  request: Id,
  first: boolean
): { readonly result: ErrorResult; readonly via: MapVia; readonly selector: string } => {
  const order: ReadonlyArray<readonly [MapVia, boolean]> = m.kind === "package"
    ? [["client", true], ["client", false]]
    : m.clientMap && !first
    ? [["client", true], ["model", true], ["client", false], ["model", false]]
    : [["model", true], ["model", false]]
  let last: { result: ErrorResult; via: MapVia; selector: string } | undefined
  for (const [via, cache] of order) {
    last = { result: mapVia(m, request, cache, via), via, selector: via === "model" ? MODEL_MAP : CLIENT_MAP }
    if (last.result.ok) return last
  }
  return last!
}

/** The unmap matching how `request` was mapped. */
export const unmapRequest = (m: ModelState, request: Id, via: MapVia): void => {
  if (via === "model") m.env.rt.send(m.model, "unmapIOSurfacesWithRequest:", "void(id)", request)
  else m.env.rt.send(m.client, CLIENT_UNMAP, "void(id,id)", clientModel(m), request)
}
