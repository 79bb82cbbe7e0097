/** Metal.open on the simulator and the stub: event twins, no-copy buffers, kernels, dispatch checks, lifetimes. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Schema, Scope } from "effect"
import { float32ToFp16, fp16ToFloat32 } from "../../src/fp16/scalar.js"
import {
  AneErrorSchema, isAneError, MetalError, NoMetalError, SharedEventRequiresPackageError
} from "../../src/schema/errors.js"
import * as Ane from "../../src/services/Ane.js"
import { Backend, layerNoop } from "../../src/services/Backend.js"
import * as Metal from "../../src/services/Metal.js"
import { double, pattern } from "./programs.js"

const sim = Effect.provide(Ane.layerSimulator({ latency: "off" }))

/** Adds `by` to every fp16 element of buffer 0 in place (a whole-surface kernel: padding included). */
const addKernel = (by: number) =>
  Metal.kernel({
    name: "add_in_place",
    simulate: ({ buffers }) => {
      const b = buffers[0]!
      const h = new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)
      for (let i = 0; i < h.length; i++) h[i] = float32ToFp16(fp16ToFloat32(h[i]!) + by)
    }
  })

describe("Metal.open", () => {
  it.scoped("opens the simulated GPU, counted among the client's live handles until its scope closes", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      const device = yield* Scope.extend(Metal.open, scope)
      expect(device.name).toBe("simulated GPU")
      expect(device.raw).toBe(0n)
      expect(yield* ane.liveHandles).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* ane.liveHandles).toBe(0)
    }).pipe(sim))

  it.scoped("fails with NoMetalError on a backend without a GPU side", () => {
    const noGpu = Layer.effect(Backend, Effect.map(Backend, ({ openMetal: _, ...rest }) => rest)).pipe(Layer.provide(layerNoop()))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Metal.open)
      expect(error._tag).toBe("NoMetalError")
      expect(error.message).toContain("no Metal device available")
      expect(error.reason).toContain("stub backend")
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(noGpu), Layer.orDie)))
  })

  it.scoped("opens a do-nothing GPU on the stub", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const model = yield* (yield* Ane.Ane).compile(double(1, 32))
      const buffer = yield* device.outputBuffer(model, 0)
      const k = yield* device.compile(Metal.kernel({ name: "k", msl: "kernel void k() {}" }))
      yield* device.dispatch(k, { buffers: [buffer], grid: 32 })
      expect(device.name).toBe("stub")
    }).pipe(Effect.provide(Ane.layerNoop())))
})

describe("MetalDevice on the simulator", () => {
  it.scoped("buffers share memory with the model's surfaces, both ways", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const device = yield* Metal.open
      const model = yield* ane.compile(double(4, 64))
      const input = yield* device.inputBuffer(model, 0)
      const output = yield* device.outputBuffer(model, 0)
      const views = yield* model.surfaces
      const bytes = yield* input.bytes
      expect(bytes.buffer).toBe(views.inputs[0]!.buffer)
      expect(bytes.byteOffset).toBe(views.inputs[0]!.byteOffset)
      expect(input.length).toBe(model.inputs[0]!.allocSize)
      // The model writes, the GPU sees; the GPU writes, the model reads.
      yield* model.writeInputF32(0, pattern(4 * 64))
      yield* model.eval
      const k = yield* device.compile(addKernel(1))
      yield* device.dispatch(k, { buffers: [output], grid: output.length / 2 })
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(pattern(4 * 64), (v) => 2 * v + 1))
    }).pipe(sim))

  it.scoped("a twin shares its event's value: the GPU signals what the ANE side reads, and waits on what it signals", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const { ane, metal } = yield* device.newSharedEvent
      expect(metal.port).toBe(ane.port)
      expect(metal.aneEvent).toBe(ane)
      const k = yield* device.compile(Metal.kernel({ name: "noop", simulate: () => undefined }))
      yield* device.dispatch(k, { buffers: [], grid: 1, signal: { event: metal, value: 5n } })
      expect(yield* ane.signaledValue).toBe(5n)
      // The dispatch waits for 7, which the CPU signals on the ANE side.
      const fiber = yield* Effect.fork(device.dispatch(k, { buffers: [], grid: 1, wait: { event: metal, value: 7n }, signal: { event: metal, value: 8n } }))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      expect(fiber.unsafePoll()).toBeNull()
      expect(yield* ane.signaledValue).toBe(5n)
      yield* ane.signal(7n)
      yield* fiber.await
      expect(yield* ane.signaledValue).toBe(8n)
      // An existing event gets a twin on its own port.
      const other = yield* (yield* Ane.Ane).createSharedEvent
      expect((yield* device.sharedEvent(other)).port).toBe(other.port)
    }).pipe(sim))

  it.scoped("refuses Metal Shading Language with a MetalError that says to give a simulate function", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const error = yield* Effect.flip(device.compile(Metal.kernel({ name: "scale", msl: "kernel void scale() {}" })))
      expect(error._tag).toBe("MetalError")
      expect(error.message).toContain("kernel scale")
      expect(error.message).toContain("cannot run Metal Shading Language")
      expect(error.message).toContain("simulate")
    }).pipe(sim))

  it.scoped("a kernel that throws fails its dispatch with a MetalError naming it", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const k = yield* device.compile(Metal.kernel({ name: "boom", simulate: () => { throw new Error("bad index") } }))
      const error = yield* Effect.flip(device.dispatch(k, { buffers: [], grid: 1 }))
      expect(error).toMatchObject({ _tag: "MetalError", op: "Metal.dispatch", resource: "kernel boom" })
      expect(error.message).toContain("bad index")
    }).pipe(sim))

  it.scoped("checks kernels before compiling them", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const bad = (k: unknown) => Effect.flip(device.compile(k as Metal.Kernel))
      expect(yield* bad(null)).toMatchObject({ _tag: "InvalidArgumentError", argument: "kernel" })
      expect(yield* bad({ name: "has space", simulate: () => undefined })).toMatchObject({ argument: "kernel.name" })
      expect(yield* bad({ name: "k" })).toMatchObject({ argument: "kernel", actual: "neither" })
      expect(yield* bad({ name: "k", msl: "" })).toMatchObject({ argument: "kernel.msl" })
      expect(yield* bad({ name: "k", simulate: 3 })).toMatchObject({ argument: "kernel.simulate" })
    }).pipe(sim))

  it.scoped("checks every dispatch argument before the GPU sees it", () =>
    Effect.gen(function*() {
      const device = yield* Metal.open
      const other = yield* Metal.open
      const model = yield* (yield* Ane.Ane).compile(double(1, 32))
      const buffer = yield* device.outputBuffer(model, 0)
      const foreign = yield* other.outputBuffer(model, 0)
      const k = yield* device.compile(addKernel(1))
      const foreignKernel = yield* other.compile(addKernel(1))
      const { metal } = yield* device.newSharedEvent
      const bad = (o: object, kernel = k) => Effect.flip(device.dispatch(kernel, { buffers: [buffer], grid: 4, ...o } as Metal.DispatchOptions))
      expect(yield* bad({}, foreignKernel)).toMatchObject({ _tag: "InvalidArgumentError", argument: "pipeline" })
      expect(yield* bad({ buffers: [foreign] })).toMatchObject({ argument: "buffers[0]" })
      expect(yield* bad({ buffers: "x" })).toMatchObject({ argument: "buffers" })
      expect(yield* bad({ grid: 0 })).toMatchObject({ argument: "grid" })
      expect(yield* bad({ grid: [1, 2, 3, 4] })).toMatchObject({ argument: "grid" })
      expect(yield* bad({ grid: 1.5 })).toMatchObject({ argument: "grid" })
      expect(yield* bad({ threadsPerThreadgroup: [1024, 2] })).toMatchObject({ argument: "threadsPerThreadgroup" })
      expect(yield* bad({ params: new Uint8Array(4097) })).toMatchObject({ argument: "params" })
      expect(yield* bad({ signal: { event: metal, value: -1n } })).toMatchObject({ argument: "signal.value" })
      expect(yield* bad({ wait: { event: {}, value: 1n } })).toMatchObject({ argument: "wait.event" })
      expect(yield* bad({ wait: 3 })).toMatchObject({ argument: "wait" })
      expect(yield* Effect.flip(device.inputBuffer(model, 1))).toMatchObject({ argument: "index", expected: "an input index in [0, 1)" })
      expect(yield* Effect.flip(device.outputBuffer({} as never, 0))).toMatchObject({ argument: "model" })
      expect(yield* Effect.flip(device.sharedEvent({} as never))).toMatchObject({ argument: "event" })
      expect(yield* Effect.flip(device.surfaceBuffer(3 as never))).toMatchObject({ argument: "surface" })
    }).pipe(sim))

  it.scoped("answers ClosedError once a buffer's scope, its model or the device has closed", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const device = yield* Metal.open
      const k = yield* device.compile(addKernel(1))
      const bufferScope = yield* Scope.make()
      const modelScope = yield* Scope.make()
      const model = yield* Scope.extend(ane.compile(double(1, 32)), modelScope)
      const early = yield* Scope.extend(device.outputBuffer(model, 0), bufferScope)
      const kept = yield* device.outputBuffer(model, 0)
      yield* Scope.close(bufferScope, Exit.void)
      expect(yield* Effect.flip(device.dispatch(k, { buffers: [early], grid: 1 }))).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(early.bytes)).toMatchObject({ _tag: "ClosedError" })
      yield* device.dispatch(k, { buffers: [kept], grid: 1 })
      yield* Scope.close(modelScope, Exit.void)
      expect(yield* Effect.flip(device.dispatch(k, { buffers: [kept], grid: 1 }))).toMatchObject({
        _tag: "ClosedError", resource: expect.stringContaining("output 0 of model")
      })
      expect(yield* Effect.flip(device.outputBuffer(model, 0))).toMatchObject({ _tag: "ClosedError" })
      const deviceScope = yield* Scope.make()
      const short = yield* Scope.extend(Metal.open, deviceScope)
      yield* Scope.close(deviceScope, Exit.void)
      expect(yield* Effect.flip(short.newSharedEvent)).toMatchObject({ _tag: "ClosedError" })
      expect(yield* Effect.flip(short.compile(addKernel(1)))).toMatchObject({ _tag: "ClosedError" })
    }).pipe(sim))

  it.scoped("surface buffers are no-copy too, and every handle is released with its scope", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const device = yield* Metal.open
        const surface = yield* ane.createSurface(256)
        const buffer = yield* device.surfaceBuffer(surface)
        yield* surface.write(Uint8Array.of(1, 2, 3))
        expect(Array.from((yield* buffer.bytes).subarray(0, 3))).toEqual([1, 2, 3])
        yield* device.newSharedEvent
        yield* device.compile(addKernel(2))
        expect(yield* ane.liveHandles).toBeGreaterThan(4)
      }))
      expect(yield* ane.liveHandles).toBe(0)
    }).pipe(sim))
})

describe("NoMetalError and MetalError", () => {
  it("are AneErrors that say what failed, and survive the error schema", () => {
    const none = new NoMetalError({ op: "Metal.open", reason: "no GPU" })
    const failed = new MetalError({ op: "Metal.dispatch", resource: "kernel k", hint: "the kernel threw" })
    expect(none.message).toBe("no Metal device available: no GPU")
    expect(failed.message).toBe("Metal.dispatch failed for kernel k: the kernel threw")
    expect([isAneError(none), isAneError(failed)]).toEqual([true, true])
    const roundTrip = Schema.decodeUnknownSync(AneErrorSchema)(Schema.encodeSync(AneErrorSchema)(failed))
    expect(roundTrip).toMatchObject({ _tag: "MetalError", resource: "kernel k" })
    const pkg = new SharedEventRequiresPackageError({ op: "PipelinedIO.make", model: "mil:1", feature: "pipelined I/O" })
    expect(pkg.message).toContain("pipelined I/O requires a package (.mlmodelc) model")
    expect(new SharedEventRequiresPackageError({ op: "x", model: "mil:1" }).message).toContain("shared events require a package")
  })
})
