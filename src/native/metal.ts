/**
 * Metal through koffi behind the port's BackendMetal (spec/native-protocol.md §9.4, errata §2 "Metal planar-scatter
 * selectors"): `MTLCreateSystemDefaultDevice`, Metal twins of shared events (`newSharedEventWithMachPort:`, a
 * private SPI asked for with `respondsToSelector:` first), no-copy buffers over surface memory, compute pipelines
 * from Metal Shading Language, and one command buffer per dispatch. A dispatch's completion is awaited off the JS
 * thread: the command buffer also signals a completion event of the device's own, which a pool thread waits on.
 * Exercised against the fake runtime (test/native-fake/fake_metal.c); not verified on a Mac.
 */
import { koffi, type LibraryHandle } from "./koffi.js"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { MetalError, NoMetalError } from "../schema/errors.js"
import type {
  BackendComputePipeline, BackendDispatch, BackendMetal, BackendMetalBuffer, BackendMetalEvent
} from "../services/Backend.js"
import type { NativeEnv } from "./env.js"
import { type Id, nil, type Objc, toId } from "./objc.js"

/** Metal.framework on macOS (in the dyld shared cache, so never checked on disk). */
export const METAL_PATH = "/System/Library/Frameworks/Metal.framework/Metal"

/** `MTLCommandBufferStatusCompleted` and `MTLCommandBufferStatusError`. */
const COMPLETED = 4
const ERROR = 5
/** A dispatch's completion is awaited in slices this long, the command buffer's status checked between them. */
const COMPLETION_SLICE_MS = 50
const TWIN = "newSharedEventWithMachPort:"
/** Selectors every device must answer; the twin SPI is asked for where it is used. */
const DEVICE_SELECTORS = [
  "newCommandQueue", "newBufferWithBytesNoCopy:length:options:deallocator:", "newLibraryWithSource:options:error:",
  "newComputePipelineStateWithFunction:error:"
] as const

/** `MTLSize`: three NSUIntegers, passed by value. */
let mtlSize: ReturnType<ReturnType<typeof koffi>["struct"]> | undefined
const MTLSize = () => (mtlSize ??= koffi().struct("MTLSize", { width: "uint64_t", height: "uint64_t", depth: "uint64_t" }))

const libraries = new Map<string, LibraryHandle>()
// A library stays loaded for the life of the process, as in objc.ts.
const load = (path: string) => {
  let lib = libraries.get(path)
  if (lib === undefined) {
    lib = koffi().load(path, { global: true })
    libraries.set(path, lib)
  }
  return lib
}

type DispatchCast = (receiver: Id, sel: bigint, grid: object, group: object) => void
const dispatchCasts = new WeakMap<Objc, DispatchCast>()
/** `dispatchThreads:threadsPerThreadgroup:` takes two structs, which the generic casts cannot express. */
const dispatchCast = (rt: Objc): DispatchCast => {
  let fn = dispatchCasts.get(rt)
  if (fn === undefined) {
    const f = rt.libs.objc.func("objc_msgSend", "void", ["void *", "void *", MTLSize(), MTLSize()])
    fn = (receiver, sel, grid, group) => void f(receiver, sel, grid, group)
    dispatchCasts.set(rt, fn)
  }
  return fn
}

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Opens the system default device from the Metal library at `path`, with a command queue and a completion event
 * pair; all released (and counted in `env.live` until then) when the scope closes.
 */
export const openNativeMetal = (env: NativeEnv, path: string = METAL_PATH): Effect.Effect<BackendMetal, NoMetalError, Scope.Scope> =>
  Effect.gen(function*() {
    const rt = env.rt
    const create = yield* Effect.try({
      try: () => load(path).func("MTLCreateSystemDefaultDevice", "void *", []),
      catch: (cause) => new NoMetalError({ op: "Metal.open", reason: `Metal.framework would not load: ${message(cause)}`, cause })
    })
    // Everything this device owns, released in reverse order when the scope closes.
    const owned: Array<Id> = []
    const own = (o: Id) => {
      owned.push(o)
      env.live++
      return o
    }
    const releaseOwned = () =>
      rt.autoreleasePool(() => {
        for (const o of owned.splice(0).reverse()) {
          rt.release(o)
          env.live--
        }
      })
    yield* Effect.addFinalizer(() => Effect.sync(releaseOwned))
    const opened = yield* Effect.try({
      try: () =>
        rt.autoreleasePool(() => {
          const device = toId(create())
          if (device === nil) return "no Metal device available (MTLCreateSystemDefaultDevice returned NULL)"
          own(device)
          const missing = DEVICE_SELECTORS.find((s) => !rt.responds(device, s))
          if (missing !== undefined) return `the device does not answer ${missing}`
          const name = rt.responds(device, "name") ? rt.string(rt.id(device, "name")) : "Metal device"
          const queue = own(rt.id(device, "newCommandQueue"))
          if (queue === nil) return "newCommandQueue returned nil"
          // The completion event: an IOSurfaceSharedEvent (a pool thread can wait on it) and its Metal twin.
          let completion: { readonly event: Id; readonly twin: Id } | undefined
          const cls = rt.cls("IOSurfaceSharedEvent")
          if (rt.responds(device, TWIN) && cls !== nil && rt.responds(cls, "new")) {
            const event = own(rt.id(cls, "new"))
            const port = event === nil ? 0 : rt.int(event, "eventPort", "uint32()")
            const twin = port === 0 ? nil : own(rt.id(device, TWIN, "id(uint32)", port))
            if (twin !== nil) completion = { event, twin }
          }
          return { device, name, queue, completion }
        }),
      catch: (cause) => new NoMetalError({ op: "Metal.open", reason: `opening the Metal device failed: ${message(cause)}`, cause })
    }).pipe(Effect.tapError(() => Effect.sync(releaseOwned)))
    // A device that cannot serve is released at once, not when the caller's scope closes.
    if (typeof opened === "string") {
      releaseOwned()
      return yield* Effect.fail(new NoMetalError({ op: "Metal.open", reason: opened }))
    }
    const { device, name, queue, completion } = opened
    let completed = 0n

    /** A +1 object made by `make`, released and uncounted when the scope closes; MetalError when nil or thrown. */
    const scoped = <A>(op: string, resource: string, make: () => { readonly id: Id; readonly value: A } | string) =>
      Effect.acquireRelease(
        Effect.try({
          try: () => rt.autoreleasePool(make),
          catch: (cause) => new MetalError({ op, resource, hint: message(cause), cause })
        }).pipe(Effect.flatMap((r) => {
          if (typeof r === "string") return Effect.fail(new MetalError({ op, resource, hint: r }))
          env.live++
          return Effect.succeed(r)
        })),
        (r) => Effect.sync(() => {
          rt.autoreleasePool(() => rt.release(r.id))
          env.live--
        })
      ).pipe(Effect.map((r) => r.value))

    const errorSlot = () => new BigUint64Array(1)
    const nsErrorText = (slot: BigUint64Array, what: string) =>
      slot[0] !== 0n ? `${what}: ${rt.nsError(slot[0]!).description}` : `${what} (no NSError)`

    const metal: BackendMetal = {
      name,
      handle: device,
      sharedEvent: (event) =>
        scoped("Metal.sharedEvent", `shared event ${event.port}`, () => {
          if (!rt.responds(device, TWIN)) return `this MTLDevice does not answer ${TWIN} (a private SPI; errata D4)`
          const twin = rt.id(device, TWIN, "id(uint32)", event.port)
          if (twin === nil) return `failed to create a Metal shared event from port ${event.port}`
          return { id: twin, value: { port: event.port, handle: twin } satisfies BackendMetalEvent }
        }),
      buffer: (bytes) =>
        scoped("Metal.buffer", `${bytes.length}-byte surface`, () => {
          // The view is koffi's over the surface's base address, so koffi passes that very address: no copy.
          // UNVERIFIED on hardware: Metal may want a page-multiple length here (the Go package passes the alloc size).
          const buffer = rt.id(device, "newBufferWithBytesNoCopy:length:options:deallocator:", "id(ptr,uint64,uint64,ptr)",
            bytes, bytes.length, 0, null)
          if (buffer === nil) return "newBufferWithBytesNoCopy:length:options:deallocator: returned nil"
          return { id: buffer, value: { bytes, handle: buffer } satisfies BackendMetalBuffer }
        }),
      compile: (kernel) =>
        scoped("Metal.compile", `kernel ${kernel.name}`, () => {
          if (kernel.msl === undefined) {
            return "the hardware compiles Metal Shading Language; this kernel has only a `simulate` function"
          }
          const optionsCls = rt.cls("MTLCompileOptions")
          const options = optionsCls === nil ? nil : rt.id(rt.id(optionsCls, "alloc"), "init")
          const slot = errorSlot()
          const library = rt.id(device, "newLibraryWithSource:options:error:", "id(id,id,err)", rt.nsString(kernel.msl), options, slot)
          rt.release(options)
          if (library === nil) return nsErrorText(slot, "the Metal Shading Language source did not compile")
          const fn = rt.id(library, "newFunctionWithName:", "id(id)", rt.nsString(kernel.name))
          rt.release(library)
          if (fn === nil) return `the source has no kernel function named ${kernel.name}`
          slot[0] = 0n
          const pipeline = rt.id(device, "newComputePipelineStateWithFunction:error:", "id(id,err)", fn, slot)
          rt.release(fn)
          if (pipeline === nil) return nsErrorText(slot, "no compute pipeline could be made")
          const max = rt.int(pipeline, "maxTotalThreadsPerThreadgroup", "uint64()")
          return { id: pipeline, value: { name: kernel.name, maxThreadsPerThreadgroup: max, handle: pipeline } satisfies BackendComputePipeline }
        }),
      dispatch: (d) => dispatch(d)
    }

    const fail = (d: BackendDispatch, hint: string, cause?: unknown) =>
      new MetalError({ op: "Metal.dispatch", resource: `kernel ${d.pipeline.name}`, hint, ...(cause !== undefined ? { cause } : {}) })

    /** Encodes and commits one command buffer; returns it retained, and the completion value it will signal. */
    const encode = (d: BackendDispatch): { readonly buffer: Id; readonly done: bigint } =>
      rt.autoreleasePool(() => {
        const cb = rt.retain(rt.id(queue, "commandBuffer"))
        if (cb === nil) throw new Error("commandBuffer returned nil")
        try {
          if (d.wait !== undefined) rt.send(cb, "encodeWaitForEvent:value:", "void(id,uint64)", d.wait.event.handle, d.wait.value)
          const encoder = rt.id(cb, "computeCommandEncoder")
          if (encoder === nil) throw new Error("computeCommandEncoder returned nil")
          rt.send(encoder, "setComputePipelineState:", "void(id)", d.pipeline.handle)
          d.buffers.forEach((b, i) => rt.send(encoder, "setBuffer:offset:atIndex:", "void(id,uint64,uint64)", b.handle, 0, i))
          if (d.params !== undefined && d.params.length > 0) {
            rt.send(encoder, "setBytes:length:atIndex:", "void(ptr,uint64,uint64)", d.params, d.params.length, d.buffers.length)
          }
          const size = ([width, height, depth]: readonly [number, number, number]) => ({ width, height, depth })
          const sel = "dispatchThreads:threadsPerThreadgroup:"
          rt.announce(encoder, sel, "void(MTLSize,MTLSize)")
          dispatchCast(rt)(encoder, rt.sel(sel), size(d.grid), size(d.threadsPerThreadgroup))
          rt.send(encoder, "endEncoding", "void()")
          if (d.signal !== undefined) rt.send(cb, "encodeSignalEvent:value:", "void(id,uint64)", d.signal.event.handle, d.signal.value)
          const done = completion === undefined ? 0n : ++completed
          if (completion !== undefined) rt.send(cb, "encodeSignalEvent:value:", "void(id,uint64)", completion.twin, done)
          rt.send(cb, "commit", "void()")
          return { buffer: cb, done }
        } catch (e) {
          rt.release(cb)
          throw e
        }
      })

    const status = (cb: Id) => rt.autoreleasePool(() => rt.int(cb, "status", "uint64()"))
    const commandError = (cb: Id) =>
      rt.autoreleasePool(() => {
        const e = rt.id(cb, "error")
        return e === nil ? "the command buffer failed (no NSError)" : `the command buffer failed: ${rt.nsError(e).description}`
      })

    /** Waits (off the JS thread when there is a completion event) until the command buffer is through. */
    const settle = (d: BackendDispatch, cb: Id, done: bigint): Effect.Effect<void, MetalError> =>
      Effect.suspend((): Effect.Effect<void, MetalError> => {
        const s = status(cb)
        if (s === ERROR) return Effect.fail(fail(d, commandError(cb)))
        if (s === COMPLETED) return Effect.void
        // Each slice holds its own reference, so closing the device meanwhile cannot free the event under it.
        const wait = completion === undefined
          ? Effect.sleep("1 millis")
          : Effect.suspend(() => {
            const held = rt.autoreleasePool(() => rt.retain(completion.event))
            return Effect.asVoid(env.pool.wait(held, done, COMPLETION_SLICE_MS, () => rt.autoreleasePool(() => rt.release(held))))
          })
        return Effect.zipRight(wait, settle(d, cb, done))
      })

    const dispatch = (d: BackendDispatch): Effect.Effect<void, MetalError> =>
      Effect.acquireUseRelease(
        Effect.try({ try: () => encode(d), catch: (cause) => fail(d, `encoding failed: ${message(cause)}`, cause) }),
        ({ buffer, done }) => settle(d, buffer, done),
        ({ buffer }) => Effect.sync(() => rt.autoreleasePool(() => rt.release(buffer)))
      )

    return metal
  })
