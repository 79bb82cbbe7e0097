/**
 * The fake runtime for the native tests: its controls (test/native-fake/controls.ts) plus test helpers, a backend
 * layer over it that checks every signature, and locked surface I/O as the library's helpers do it.
 */
import { afterEach, expect } from "@effect/vitest"
import { Effect } from "effect"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import type { TensorLayout } from "../../src/schema/TensorLayout.js"
import { Backend, type BackendRequest, type BackendSurface } from "../../src/services/Backend.js"
import { packSurface, type SurfaceViews, unpackSurface } from "../../src/sim/layout.js"
import type { Fake } from "../native-fake/controls.js"

export * from "../native-fake/controls.js"

/**
 * Asserts that every native handle was released and that the fake rejected no message, signature or surface access.
 */
export const expectClean = (fake: Fake) =>
  Effect.gen(function*() {
    const backend = yield* Backend
    expect(yield* backend.liveHandles).toBe(0)
    expect(fake.rejected()).toBe(0)
    expect(fake.mismatches()).toBe(0)
    expect([fake.surfaceMisuse("unlocked"), fake.surfaceMisuse("lock")]).toEqual([0, 0])
    // Every message since the last reset was sent inside an autorelease pool, on whichever thread sent it.
    expect(fake.unpooled()).toEqual({ count: 0, last: "" })
  })

/**
 * After every test of a file that loads the fake: nothing was autoreleased outside a pool, on any thread (the
 * fake counts such objects per thread as leaked), and no surface was written without its lock.
 */
export const checkAfterEach = (fake: Fake) =>
  afterEach(() => {
    expect(fake.orphans()).toBe(0)
    expect(fake.surfaceMisuse("unlocked")).toBe(0)
  })

/** A native backend layer over the fake, checking every signature it sends against the fake's table. */
export const fakeLayer = (fake: Fake, options: NativeBackend.NativeOptions = {}) =>
  NativeBackend.layerWith({
    paths: fake.paths,
    loadRetryMs: 1,
    onSend: (selector, signature, receiver) => {
      fake.checkSignature(receiver, selector, signature)
    },
    ...options
  })

/** Writes `values` into input `index` of `request` under its surface lock, as the library's write helpers do. */
export const writeInput = (request: BackendRequest, index: number, layout: TensorLayout, values: Float32Array): void => {
  const write = (bytes: Uint8Array) => packSurface(layout, values, viewsOf(bytes))
  if (request.access === undefined) write(request.inputs[index]!)
  else request.access("input", index, "write", write)
}

/** Reads output `index` of `request` under a read-only surface lock. */
export const readOutput = (request: BackendRequest, index: number, layout: TensorLayout, side: "input" | "output" = "output"): Float32Array => {
  const read = (bytes: Uint8Array) => readF32(layout, bytes)
  const views = side === "input" ? request.inputs : request.outputs
  return request.access === undefined ? read(views[index]!) : request.access(side, index, "read", read)
}

/** Writes `values` into a standalone surface under its lock. */
export const writeSurface = (surface: BackendSurface, layout: TensorLayout, values: Float32Array): void => {
  const write = (bytes: Uint8Array) => packSurface(layout, values, viewsOf(bytes))
  if (surface.access === undefined) write(surface.bytes)
  else surface.access("write", write)
}

/** Reads a standalone surface under a read-only lock. */
export const readSurface = (surface: BackendSurface, layout: TensorLayout): Float32Array => {
  const read = (bytes: Uint8Array) => readF32(layout, bytes)
  return surface.access === undefined ? read(surface.bytes) : surface.access("read", read)
}

/** Typed views of a surface's bytes, as the simulator's codecs take them. */
export const viewsOf = (bytes: Uint8Array): SurfaceViews => ({
  bytes,
  u16: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1),
  f32: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2)
})

/** Packs `values` into a surface with `layout`. */
export const writeF32 = (layout: TensorLayout, bytes: Uint8Array, values: Float32Array) =>
  packSurface(layout, values, viewsOf(bytes))

/** Unpacks a surface with `layout`. */
export const readF32 = (layout: TensorLayout, bytes: Uint8Array): Float32Array => {
  const out = new Float32Array(layout.logicalElements)
  unpackSurface(layout, viewsOf(bytes), out)
  return out
}

