/**
 * Metal on the hardware backend, against the fake runtime: the device and its objects follow the selector table and
 * are all released, buffers are no-copy over IOSurfaces, and ANE → GPU → ANE runs end to end through shared
 * events, as calls and as a Stream stage.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope, Stream } from "effect"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { float32ToFp16, fp16ToFloat32 } from "../../src/fp16/scalar.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import { Backend } from "../../src/services/Backend.js"
import * as Metal from "../../src/services/Metal.js"
import * as Pipeline from "../../src/services/Pipeline.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { doubleText, pattern } from "../services/programs.js"
import { attributeOf, checkAfterEach, fakeLayer, loadFake } from "./fake.js"
import { type KernelCall, loadMetalFake } from "./metal-fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const fake = loadFake()
const metal = loadMetalFake()
checkAfterEach(fake)

const C = 4
const W = 32
const text = doubleText(C, W)

const backendLayer = () => fakeLayer(fake, { metalPath: fake.paths.objc })
const aneLayer = () => Ane.layerBackend().pipe(Layer.provide(backendLayer()), Layer.orDie)

const PLUS_ONE = `#include <metal_stdlib>
using namespace metal;
kernel void plus_one(device const half *a [[buffer(0)]], device half *b [[buffer(1)]], uint i [[thread_position_in_grid]]) {
    b[i] = a[i] + 1.0h;
}
`
/** The kernel as the fake GPU runs it (and as the simulator would): b = a + 1 over every fp16 element. */
const plusOne = (call: KernelCall) => {
  if (call.name !== "plus_one") return 1
  const [a, b] = call.buffers as [Uint8Array, Uint8Array]
  const src = new Uint16Array(a.buffer, a.byteOffset, a.length >> 1)
  const dst = new Uint16Array(b.buffer, b.byteOffset, b.length >> 1)
  for (let i = 0; i < call.grid[0]; i++) dst[i] = float32ToFp16(fp16ToFloat32(src[i]!) + 1)
  return 0
}

/** The fake engine runs the doubling program on the simulator for every package model; packages are temp folders. */
const engine = Effect.gen(function*() {
  const sim = yield* SimBackend.make({ rules: "warn", latency: "off" })
  const simModel = yield* sim.compile(CompileOptions.mil({ text }))
  fake.setAttributes({ inputs: simModel.inputs.map(attributeOf), outputs: simModel.outputs.map(attributeOf) })
  fake.setEval((_hex, inputs, outputs) => {
    simModel.inputs.forEach((l, i) => simModel.request.inputs[i]!.set(new Uint8Array(koffi.view(inputs[i]!, l.allocSize))))
    if (Exit.isFailure(Effect.runSyncExit(simModel.request.eval))) return 1
    simModel.outputs.forEach((l, i) => new Uint8Array(koffi.view(outputs[i]!, l.allocSize)).set(simModel.request.outputs[i]!))
    return 0
  })
  metal.reset()
  metal.setKernel(plusOne)
  yield* Effect.addFinalizer(() => Effect.sync(() => {
    fake.setEval(undefined)
    fake.setAttributes(undefined)
    metal.setKernel(undefined)
    metal.reset()
  }))
  const packageModel = Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-metal-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
    )
    return yield* (yield* Ane.Ane).compile(CompileOptions.package({ path: dir }))
  })
  return { packageModel }
})

/** The fake Metal's counters are clean and every Metal object it made is gone (its GPU threads end on their own). */
const metalClean = Effect.gen(function*() {
  for (let i = 0; i < 200 && metal.live() > 0; i++) yield* Effect.sleep("5 millis")
  expect(metal.live()).toBe(0)
  expect([metal.stat("rejected"), metal.stat("mismatches"), metal.stat("unpooled"), metal.stat("orphans")]).toEqual([0, 0, 0, 0])
  expect(fake.mismatches()).toBe(0)
  expect(fake.unpooled()).toEqual({ count: 0, last: "" })
})

describe("Metal on the hardware backend (fake runtime)", () => {
  it.scopedLive("opens the default device with a command queue and a completion event, and releases them all", () =>
    Effect.gen(function*() {
      yield* engine
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const device = yield* Metal.open
        expect(device.name).toBe("Fake GPU")
        expect(device.raw).not.toBe(0n)
        expect(metal.log()).toEqual([
          "MTLCreateSystemDefaultDevice",
          "-MTLDevice respondsToSelector:", "-MTLDevice respondsToSelector:", "-MTLDevice respondsToSelector:",
          "-MTLDevice respondsToSelector:", "-MTLDevice respondsToSelector:", "-MTLDevice name", "-MTLDevice newCommandQueue",
          "-MTLDevice respondsToSelector:", "-MTLDevice newSharedEventWithMachPort:"
        ])
        // The device, its command queue, and the completion event with its twin.
        expect(yield* ane.liveHandles).toBe(4)
      }))
      expect(yield* ane.liveHandles).toBe(0)
      yield* metalClean
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("fails with NoMetalError when there is no device or no Metal library", () =>
    Effect.gen(function*() {
      metal.setDevice(false)
      const none = yield* Effect.flip(Metal.open)
      metal.setDevice(true)
      expect(none._tag).toBe("NoMetalError")
      expect(none.message).toContain("no Metal device available")
      const missing = yield* Effect.flip(Metal.open.pipe(
        Effect.provide(Ane.layerBackend().pipe(Layer.provide(fakeLayer(fake, { metalPath: "/nonexistent/Metal" })), Layer.orDie))
      ))
      expect(missing.reason).toContain("Metal.framework would not load")
      yield* metalClean
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("a device missing a selector it needs is a NoMetalError, released at once; a missing twin SPI is a MetalError", () =>
    Effect.gen(function*() {
      yield* engine
      const ane = yield* Ane.Ane
      metal.hide("newCommandQueue")
      const error = yield* Effect.flip(Metal.open)
      expect(error.reason).toContain("does not answer newCommandQueue")
      // Still inside the scope the open ran in: nothing is held until it closes.
      expect(yield* ane.liveHandles).toBe(0)
      expect(metal.live()).toBe(0)
      metal.reset()
      metal.hide("newSharedEventWithMachPort:")
      const device = yield* Metal.open
      const event = yield* ane.createSharedEvent
      const twin = yield* Effect.flip(device.sharedEvent(event))
      expect(twin).toMatchObject({ _tag: "MetalError", op: "Metal.sharedEvent" })
      expect(twin.message).toContain("does not answer newSharedEventWithMachPort:")
      // Without the SPI there is no completion event either: a dispatch's end is found by polling `status`.
      metal.setKernel(() => 0)
      const k = yield* device.compile(Metal.kernel({ name: "plus_one", msl: PLUS_ONE }))
      yield* device.dispatch(k, { buffers: [], grid: 1 })
      expect(metal.stat("dispatches")).toBe(1)
      expect(metal.log()).toContain("-MTLCommandBuffer status")
      metal.reset()
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("makes no-copy buffers only over IOSurface memory, and compiles Metal Shading Language only", () =>
    Effect.gen(function*() {
      const { packageModel } = yield* engine
      const device = yield* Metal.open
      const model = yield* packageModel
      const buffer = yield* device.outputBuffer(model, 0)
      const views = yield* model.surfaces
      expect((yield* buffer.bytes).byteOffset).toBe(views.outputs[0]!.byteOffset)
      // Memory that is not an IOSurface's is refused by the fake, so the pointer really is the surface's.
      const backendMetal = device[Metal.MetalTypeId].metal
      const copy = yield* Effect.flip(Effect.scoped(backendMetal.buffer(new Uint8Array(4096))))
      expect(copy).toMatchObject({ _tag: "MetalError", op: "Metal.buffer" })
      metal.reset()
      const simOnly = yield* Effect.flip(device.compile(Metal.kernel({ name: "k", simulate: () => undefined })))
      expect(simOnly.message).toContain("compiles Metal Shading Language")
      const noKernel = yield* Effect.flip(device.compile(Metal.kernel({ name: "k", msl: "int x;" })))
      expect(noKernel.message).toContain("did not compile")
      const wrongName = yield* Effect.flip(device.compile(Metal.kernel({ name: "other", msl: PLUS_ONE })))
      expect(wrongName.message).toContain("no kernel function named other")
      const k = yield* device.compile(Metal.kernel({ name: "plus_one", msl: PLUS_ONE }))
      expect(k.maxThreadsPerThreadgroup).toBe(1024)
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("runs ANE → GPU → ANE through one shared event pair, the counter strictly increasing", () =>
    Effect.gen(function*() {
      const { packageModel } = yield* engine
      const ane = yield* Ane.Ane
      const grids: Array<readonly [number, number, number]> = []
      metal.setKernel((call) => {
        grids.push(call.grid)
        return plusOne(call)
      })
      yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* packageModel
        const next = yield* packageModel
        const device = yield* Metal.open
        const p = yield* Pipeline.make(device)
        const k = yield* device.compile(Metal.kernel({ name: "plus_one", msl: PLUS_ONE }))
        const buffers = [yield* device.outputBuffer(first, 0), yield* device.inputBuffer(next, 0)]
        const elements = buffers[0]!.length / 2
        let last = 0n
        for (let i = 0; i < 20; i++) {
          yield* first.writeInputF32(0, pattern(C * W, i))
          const v = yield* p.aneToMetal(first)
          const s = yield* p.dispatch(k, { buffers, grid: [elements, 1, 1], threadsPerThreadgroup: [64, 1, 1] })
          const b = yield* p.bidirectional(next)
          expect([v > last, s, b.signal]).toEqual([true, v + 1n, s + 1n])
          expect(yield* p.aneEvent.signaledValue).toBe(b.signal)
          last = b.signal
          expect(Array.from(yield* next.readOutputF32(0))).toEqual(Array.from(pattern(C * W, i), (x) => 4 * x + 2))
        }
        // The MTLSize structs arrived whole.
        expect(grids[0]).toEqual([elements, 1, 1])
        expect(metal.log()).toContain("-MTLComputeCommandEncoder dispatchThreads:threadsPerThreadgroup:")
        expect(metal.log()).toContain("-MTLCommandBuffer encodeWaitForEvent:value:")
      }))
      expect(yield* ane.liveHandles).toBe(0)
      yield* metalClean
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("streams 100 inputs ANE → GPU → ANE at depth 2 with outputs as if run in turn, then releases everything", () =>
    Effect.gen(function*() {
      const { packageModel } = yield* engine
      const ane = yield* Ane.Ane
      const out = yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* packageModel
        const next = yield* packageModel
        const device = yield* Metal.open
        const kernel = yield* device.compile(Metal.kernel({ name: "plus_one", msl: PLUS_ONE }))
        return yield* Stream.range(0, 99).pipe(
          Stream.map((i) => [pattern(C * W, i)]),
          Pipeline.stream(device, { first, kernel, next, grid: (C * first.outputs[0]!.planeStride) / 2, depth: 2 }),
          Stream.runCollect
        )
      }))
      let i = 0
      for (const o of out) {
        expect(Array.from(o[0]!)).toEqual(Array.from(pattern(C * W, i), (x) => 4 * x + 2))
        i++
      }
      expect(i).toBe(100)
      expect(metal.stat("dispatches")).toBe(100)
      expect(yield* ane.liveHandles).toBe(0)
      yield* metalClean
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("a kernel that fails fails its dispatch with a MetalError, and the stream releases everything", () =>
    Effect.gen(function*() {
      const { packageModel } = yield* engine
      const ane = yield* Ane.Ane
      let runs = 0
      metal.setKernel((call) => (++runs === 7 ? 1 : plusOne(call)))
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const first = yield* packageModel
        const next = yield* packageModel
        const device = yield* Metal.open
        const kernel = yield* device.compile(Metal.kernel({ name: "plus_one", msl: PLUS_ONE }))
        return yield* Stream.runDrain(Stream.range(0, 29).pipe(
          Stream.map((i) => [pattern(C * W, i)]),
          Pipeline.stream(device, { first, kernel, next, grid: 1, depth: 2 })
        ))
      })))
      expect(exit).toMatchObject({ _tag: "Failure", cause: { error: { _tag: "MetalError", op: "Metal.dispatch" } } })
      expect(String((exit as { cause: { error: Error } }).cause.error.message)).toContain("command buffer failed")
      expect(yield* ane.liveHandles).toBe(0)
      yield* metalClean
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("the Backend's twin, buffer and kernel objects each count as a handle until their scope closes", () =>
    Effect.gen(function*() {
      yield* engine
      const backend = yield* Backend
      const scope = yield* Scope.make()
      const m = yield* Scope.extend(backend.openMetal!, scope)
      const event = yield* Scope.extend(backend.createSharedEvent, scope)
      const twin = yield* Scope.extend(m.sharedEvent(event), scope)
      expect(twin.port).toBe(event.port)
      yield* Scope.extend(m.compile({ name: "plus_one", msl: PLUS_ONE }), scope)
      expect(yield* backend.liveHandles).toBe(7)
      yield* Scope.close(scope, Exit.void)
      expect(yield* backend.liveHandles).toBe(0)
      yield* metalClean
    }).pipe(Effect.provide(backendLayer())))
})
