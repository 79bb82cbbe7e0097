/**
 * IOSurfaces (spec/native-protocol.md §7.1): creation from a property dictionary made with the kCFType callbacks
 * and the framework's own `kIOSurface…` keys, CPU access under `IOSurfaceLock` (read-only for reads), and
 * standalone surfaces that several requests can share. A zero-copy view of a surface is valid only under a lock.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { MapError } from "../schema/errors.js"
import type { TensorLayout } from "../schema/TensorLayout.js"
import type { BackendSurface, SurfaceAccessMode } from "../services/Backend.js"
import { native, type NativeEnv, Stop } from "./env.js"
import { type Id, type IOSurfaceKey, nil, type Objc } from "./objc.js"

/** `kIOSurfaceLockReadOnly`: the lock flag for CPU reads; writes lock with 0 (§7.1). */
export const LOCK_READ_ONLY = 1

/**
 * Runs `f` with `surface` locked for the CPU: `IOSurfaceLock(ref, mode === "read" ? kIOSurfaceLockReadOnly : 0)`,
 * then the matching unlock, even when `f` throws. A lock that fails throws before `f` runs. Each call sits in an
 * autorelease pool, as every native call does.
 */
export const withSurfaceLock = <A>(rt: Objc, surface: Id, mode: SurfaceAccessMode, f: () => A): A => {
  const flags = mode === "read" ? LOCK_READ_ONLY : 0
  return rt.autoreleasePool(() => {
    const rc = rt.ioSurfaceLock(surface, flags)
    if (rc !== 0) throw new Error(`IOSurfaceLock failed (${rc})`)
    try {
      return f()
    } finally {
      rt.ioSurfaceUnlock(surface, flags)
    }
  })
}

type SurfaceLayout = Pick<TensorLayout, "width" | "height" | "channels" | "elemSize" | "rowStride" | "allocSize">

/** Creates one IOSurface for a tensor with the six §7.1 properties; returns the surface and its byte view. */
export const createSurface = (env: NativeEnv, layout: SurfaceLayout, op: string, model: string): { surface: Id; view: Uint8Array } => {
  const rt = env.rt
  const entries: ReadonlyArray<readonly [IOSurfaceKey, number]> = [
    ["kIOSurfaceWidth", layout.width],
    ["kIOSurfaceHeight", layout.channels * layout.height],
    ["kIOSurfaceBytesPerElement", layout.elemSize],
    ["kIOSurfaceBytesPerRow", layout.rowStride],
    ["kIOSurfaceAllocSize", layout.allocSize],
    ["kIOSurfacePixelFormat", 0]
  ]
  // The framework's constants as keys (IOSurface looks them up by CFEqual; a fresh string would do only with the
  // kCFType callbacks, and never with NULL ones), values as CFNumbers the dictionary retains.
  const keys = entries.map(([k]) => rt.ioSurfaceKey(k))
  const values = entries.map(([, v]) => rt.cfNumber(v))
  const dict = rt.cfDictionary(keys, values)
  for (const o of values) rt.cfRelease(o)
  const surface = rt.ioSurfaceCreate(dict)
  rt.cfRelease(dict)
  const where = `tensor [${layout.channels}, ${layout.height}, ${layout.width}] x ${layout.elemSize} ` +
    `(alloc=${layout.allocSize} stride=${layout.rowStride})`
  if (surface === nil) throw new Stop(new MapError({ op, model, hint: `failed to create IOSurface for ${where}` }))
  env.live++
  // The base address of a non-purgeable surface is stable; it is read once under a lock and kept for the views.
  const base = withSurfaceLock(rt, surface, "read", () => rt.ioSurfaceBase(surface))
  const size = rt.ioSurfaceAllocSize(surface)
  if (base === nil || size < layout.allocSize) {
    rt.cfRelease(surface)
    env.live--
    throw new Stop(new MapError({ op, model, hint: `IOSurface for ${where} has no base address or is too small (${size})` }))
  }
  return { surface, view: rt.view(base, layout.allocSize) }
}

/** The native side of a surface made by {@link standaloneSurface}. */
export interface NativeSurfaceState {
  readonly env: NativeEnv
  readonly surface: Id
  closed: boolean
}

/** The native state behind each standalone BackendSurface, so a request over it can find its IOSurface. */
export const nativeSurfaces = new WeakMap<BackendSurface, NativeSurfaceState>()

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
        env.rt.autoreleasePool(() => env.rt.cfRelease(state.surface))
        env.live--
      })
  ).pipe(Effect.map((state) => {
    const surface: BackendSurface = {
      id: nextSurfaceId++,
      bytes: state.view,
      access: (mode, f) => {
        // After close the IOSurface may be gone: never lock a freed one.
        if (state.closed) throw new Error(`surface ${surface.id} is closed`)
        return withSurfaceLock(env.rt, state.surface, mode, () => f(state.view))
      }
    }
    nativeSurfaces.set(surface, state)
    return surface
  }))
