import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope } from "effect"
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { writeBlobFile } from "../../src/mil/blob.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend } from "../../src/services/Backend.js"
import { EngineClock } from "../../src/sim/latency.js"
import { packSurface, unpackSurface } from "../../src/sim/layout.js"
import * as Sim from "../../src/sim/SimBackend.js"
import { program, views } from "./helpers.js"

const withSim = (options: Sim.SimulatorOptions = {}) =>
  <A, E>(eff: Effect.Effect<A, E, Backend | Scope.Scope>) =>
    eff.pipe(Effect.provide(Sim.layer({ latency: "off", ...options })), Effect.scoped)

// Inputs declared b-then-a, outputs z-then-y: the engine binds them sorted by name.
const twoIo = program(
  "tensor<fp16, [1, 4, 1, 40]> b, tensor<fp32, [1, 2, 3, 10]> a",
  `    tensor<fp16, [1, 4, 1, 40]> z = mul(x = b, y = b)[name = string("z")];
    tensor<fp32, [1, 2, 3, 10]> y = add(x = a, y = a)[name = string("y")];`,
  "z, y"
)

const addOne = program(
  "tensor<fp16, [1, 64, 1, 384]> x",
  `    tensor<fp16, []> one = const()[name = string("one"), val = tensor<fp16, []>(0x1p+0)];
    tensor<fp16, [1, 64, 1, 384]> y = add(x = x, y = one)[name = string("y")];`,
  "y"
)

const compileText = (text: string) => Effect.flatMap(Backend, (be) => be.compile(CompileOptions.mil({ text })))

describe("SimBackend layouts and binding order", () => {
  it.effect("reports layouts the way the engine does and binds sorted by name", () =>
    withSim({ rules: "warn" })(Effect.gen(function*() {
      const m = yield* compileText(twoIo)
      expect(m.inputs.map((l) => l.name)).toEqual(["a", "b"])
      expect(m.outputs.map((l) => l.name)).toEqual(["y", "z"])
      const [a, b] = m.inputs
      expect([a!.channels, a!.height, a!.width, a!.elemSize, a!.rowStride, a!.planeStride, a!.allocSize])
        .toEqual([2, 3, 10, 4, 64, 192, 384])
      expect([b!.channels, b!.height, b!.width, b!.elemSize, b!.rowStride, b!.planeStride, b!.allocSize])
        .toEqual([4, 1, 40, 2, 128, 128, 512])
      expect(m.request.inputs.map((s) => s.length)).toEqual([384, 512])
      // Write a = 1.5 everywhere (fp32 surface), b = 3 (fp16 surface), and read the outputs by binding index.
      packSurface(a!, new Float32Array(60).fill(1.5), views(m.request.inputs[0]!))
      packSurface(b!, new Float32Array(160).fill(3), views(m.request.inputs[1]!))
      yield* m.request.eval
      const y = new Float32Array(60), z = new Float32Array(160)
      unpackSurface(m.outputs[0]!, views(m.request.outputs[0]!), y)
      unpackSurface(m.outputs[1]!, views(m.request.outputs[1]!), z)
      expect(Array.from(new Set(y))).toEqual([3])
      expect(Array.from(new Set(z))).toEqual([9])
      // Padding bytes of a row stay zero: element (c=0, h=0) ends at byte 40 of a 64-byte row.
      expect(Array.from(m.request.outputs[0]!.subarray(40, 64)).every((v) => v === 0)).toBe(true)
    })))

  it.effect("maps rank 1, 2, 3 and 5 shapes onto [C, H, W] (leading axes folded into C)", () =>
    withSim({ rules: "off" })(Effect.gen(function*() {
      const m = yield* compileText(program(
        "tensor<fp16, [7]> r1, tensor<fp16, [3, 5]> r2, tensor<fp16, [2, 3, 4]> r3, tensor<fp16, [2, 3, 4, 5, 6]> r5",
        `    tensor<fp16, [7]> o1 = relu(x = r1)[name = string("o1")];
    tensor<fp16, [3, 5]> o2 = relu(x = r2)[name = string("o2")];
    tensor<fp16, [2, 3, 4]> o3 = relu(x = r3)[name = string("o3")];
    tensor<fp16, [2, 3, 4, 5, 6]> o5 = relu(x = r5)[name = string("o5")];`,
        "o1, o2, o3, o5"
      ))
      expect(m.inputs.map((l) => [l.name, l.channels, l.height, l.width])).toEqual([
        ["r1", 1, 1, 7], ["r2", 1, 3, 5], ["r3", 2, 3, 4], ["r5", 24, 5, 6]
      ])
    })))

  it.effect("int32 I/O is an UnsupportedLayoutError naming the tensor (with the ANE rules off)", () =>
    withSim({ rules: "off" })(Effect.gen(function*() {
      const e = yield* Effect.flip(compileText(program(
        "tensor<int32, [1, 4]> ids",
        `    tensor<int32, [1, 4]> y = add(x = ids, y = ids)[name = string("y")];`,
        "y"
      )))
      expect(e._tag).toBe("UnsupportedLayoutError")
      expect(e._tag === "UnsupportedLayoutError" && e.tensor).toBe("input ids")
    })))

  it.effect("a width past the chip's limit is an UnsupportedLayoutError (m1: 16384)", () =>
    withSim({ chip: "m1", rules: "off" })(Effect.gen(function*() {
      const e = yield* Effect.flip(compileText(program(
        "tensor<fp16, [1, 1, 1, 20000]> x",
        `    tensor<fp16, [1, 1, 1, 20000]> y = relu(x = x)[name = string("y")];`,
        "y"
      )))
      expect(e._tag).toBe("UnsupportedLayoutError")
      expect(e.message).toContain("16384")
    })))
})

describe("SimBackend rules", () => {
  it.effect("inputs of different allocation sizes fail by default, run with warn, are silent with off", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(withSim()(compileText(twoIo)))
      expect(e._tag).toBe("CompileError")
      expect(e._tag === "CompileError" && e.diagnostics.map((d) => d.code)).toContain("ANE004")
      const warned = yield* withSim({ rules: "warn" })(Effect.map(compileText(twoIo), (m) => (m as Sim.SimModel).diagnostics))
      expect(warned.some((d) => d.code === "ANE004" && d.severity === "warning")).toBe(true)
      const off = yield* withSim({ rules: "off" })(Effect.map(compileText(twoIo), (m) => (m as Sim.SimModel).diagnostics))
      expect(off.filter((d) => d.kind === "ane")).toEqual([])
    }))

  it.effect("an unsupported op is a CompileError naming the op and its line", () =>
    withSim()(Effect.gen(function*() {
      const e = yield* Effect.flip(compileText(program(
        "tensor<fp16, [1, 64, 1, 384]> x",
        `    tensor<fp16, [1, 64, 1, 384]> y = frobnicate(x = x)[name = string("y")];`,
        "y"
      )))
      expect(e._tag).toBe("CompileError")
      if (e._tag !== "CompileError") return
      const d = e.diagnostics.find((x) => x.severity === "error")!
      expect(d.code).toBe("SIM-UNSUPPORTED-OP")
      expect(d.message).toContain("frobnicate")
      expect(d.line).toBe(5)
    })))

  it.effect("missing and short weight files are CompileErrors naming the path", () =>
    withSim()(Effect.gen(function*() {
      const text = program(
        "tensor<fp16, [1, 64, 1, 384]> x",
        `    tensor<fp16, [1, 64, 1, 1]> w = const()[name = string("w"), val = tensor<fp16, [1, 64, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
    tensor<fp16, [1, 64, 1, 384]> y = mul(x = x, y = w)[name = string("y")];`,
        "y"
      )
      const be = yield* Backend
      const missing = yield* Effect.flip(be.compile(CompileOptions.mil({ text })))
      expect(missing._tag === "CompileError" && missing.diagnostics.find((d) => d.severity === "error")?.code).toBe("SIM-BLOB-MISSING")
      expect(missing.message).toContain("@model_path/weights/w.bin")
      const blob = writeBlobFile([{ dtype: "fp16", data: new Float32Array(32) }])
      if (!("bytes" in blob)) throw blob
      const short = yield* Effect.flip(be.compile(CompileOptions.mil({ text, weights: [{ path: "@model_path/weights/w.bin", bytes: blob.bytes }] })))
      expect(short._tag === "CompileError" && short.diagnostics.find((d) => d.severity === "error")?.code).toBe("SIM-BLOB")
      expect(yield* be.liveHandles).toBe(0)
    })))

  it.effect("a missing package directory is a CompileError", () =>
    withSim()(Effect.gen(function*() {
      const be = yield* Backend
      const e = yield* Effect.flip(be.compile(CompileOptions.package({ path: "/nonexistent/model.mlmodelc" })))
      expect(e._tag).toBe("CompileError")
      expect(e.message).toContain("/nonexistent/model.mlmodelc")
    })))
})

describe("SimBackend budget, faults and handles", () => {
  it.effect("probe reports the simulator", () =>
    withSim({ chip: "m1" })(Effect.gen(function*() {
      const info = yield* (yield* Backend).probe
      expect(info.backend).toBe("simulator")
      expect(info.architecture).toBe("h13")
    })))

  it.effect("the compile budget counts successful compiles and then refuses", () =>
    withSim({ compileBudget: 2 })(Effect.gen(function*() {
      const be = yield* Backend
      expect(be.compileLimit).toBe(2)
      yield* Effect.flip(compileText("not mil"))
      yield* compileText(addOne)
      yield* compileText(addOne)
      expect(yield* be.compileCount).toBe(2)
      const e = yield* Effect.flip(compileText(addOne))
      expect(e._tag).toBe("CompileBudgetExhaustedError")
      expect(e._tag === "CompileBudgetExhaustedError" && [e.used, e.limit]).toEqual([2, 2])
    })))

  const stages = [
    ["compile", "CompileError"],
    ["load", "ModelLoadError"],
    ["map", "MapError"],
    ["eval", "EvalError"]
  ] as const
  for (const [stage, tag] of stages) {
    it.effect(`an injected ${stage} fault fails with ${tag} carrying code and domain, and leaks nothing`, () =>
      withSim({ faults: [{ stage, nth: 2, code: 0x77, domain: "test.domain" }] })(Effect.gen(function*() {
        const be = yield* Backend
        const run = Effect.scoped(Effect.gen(function*() {
          const m = yield* compileText(addOne)
          yield* m.request.eval
        }))
        yield* run
        const e = yield* Effect.flip(run)
        expect(e._tag).toBe(tag)
        expect("code" in e && e.code).toBe(0x77)
        expect("domain" in e && e.domain).toBe("test.domain")
        expect(yield* be.liveHandles).toBe(0)
        yield* run
      })))
  }

  it.effect("a failed compile releases what it acquired at once, before its scope closes", () =>
    withSim({ faults: [{ stage: "map", nth: 1 }] })(Effect.gen(function*() {
      const be = yield* Backend
      const e = yield* Effect.flip(compileText(addOne))
      expect(e._tag).toBe("MapError")
      expect(e._tag === "MapError" && e.code).toBe(13)
      expect(yield* be.liveHandles).toBe(0)
    })))

  it.effect("live handles: model, requests, surfaces, events all return to zero", () =>
    withSim()(Effect.gen(function*() {
      const be = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const m = yield* compileText(addOne)
        const before = yield* be.liveHandles
        expect(before).toBeGreaterThan(0)
        yield* Effect.scoped(Effect.gen(function*() {
          yield* m.mapRequest
          yield* be.createSurface(1024)
          yield* be.createSharedEvent
          expect(yield* be.liveHandles).toBeGreaterThan(before)
        }))
        expect(yield* be.liveHandles).toBe(before)
      }))
      expect(yield* be.liveHandles).toBe(0)
    })))

  it.live("interrupting an evaluation in flight leaves no handles", () =>
    withSim({ latency: { fixedUs: 5_000_000 } })(Effect.gen(function*() {
      const be = yield* Backend
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const m = yield* compileText(addOne)
        yield* m.request.evalAsync
      })))
      yield* Effect.sleep("50 millis")
      expect(yield* be.liveHandles).toBeGreaterThan(0)
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(yield* be.liveHandles).toBe(0)
    })))

  it.effect("a model used after its scope closed fails with ClosedError", () =>
    withSim()(Effect.gen(function*() {
      const m = yield* Effect.scoped(compileText(addOne))
      const e = yield* Effect.flip(m.request.eval)
      expect(e._tag).toBe("ClosedError")
      const e2 = yield* Effect.flip(Effect.scoped(m.mapRequest))
      expect(e2._tag).toBe("ClosedError")
    })))

  it.effect("createSurface refuses a non-positive size", () =>
    withSim()(Effect.gen(function*() {
      const e = yield* Effect.flip((yield* Backend).createSurface(0))
      expect(e._tag).toBe("InvalidArgumentError")
    })))
})

describe("SimBackend requests and events", () => {
  it.effect("mapped requests have their own surfaces", () =>
    withSim()(Effect.gen(function*() {
      const m = yield* compileText(addOne)
      const r2 = yield* m.mapRequest
      const l = m.inputs[0]!
      packSurface(l, new Float32Array(l.logicalElements).fill(1), views(m.request.inputs[0]!))
      packSurface(l, new Float32Array(l.logicalElements).fill(5), views(r2.inputs[0]!))
      yield* r2.eval
      yield* m.request.eval
      const a = new Float32Array(l.logicalElements), b = new Float32Array(l.logicalElements)
      unpackSurface(m.outputs[0]!, views(m.request.outputs[0]!), a)
      unpackSurface(m.outputs[0]!, views(r2.outputs[0]!), b)
      expect([a[0], a[a.length - 1], b[0], b[b.length - 1]]).toEqual([2, 2, 6, 6])
    })))

  it.live("shared events: signal, wait with timeout, and evalWithSharedEvents waits then signals", () =>
    withSim()(Effect.gen(function*() {
      const be = yield* Backend
      const ev = yield* be.createSharedEvent
      expect(yield* ev.wait(1n, 10)).toBe(false)
      const m = yield* compileText(addOne)
      const done = yield* be.createSharedEvent
      const fiber = yield* Effect.fork(m.request.evalWithSharedEvents({
        wait: { event: ev, value: 3n },
        signal: { event: done, value: 7n }
      }))
      yield* Effect.sleep("20 millis")
      expect(yield* done.signaledValue).toBe(0n)
      yield* ev.signal(3n)
      yield* Fiber.join(fiber)
      expect(yield* done.signaledValue).toBe(7n)
      expect(yield* done.wait(7n, 0)).toBe(true)
    })))

  it.live("evalAsync waits out at least the modelled latency", () =>
    withSim({ latency: { fixedUs: 20_000 } })(Effect.gen(function*() {
      const m = yield* compileText(addOne)
      const t0 = performance.now()
      yield* m.request.evalAsync
      expect(performance.now() - t0).toBeGreaterThanOrEqual(19.5)
    })))

  it("the engine clock overlaps dispatch floors and queues compute", () => {
    const clock = EngineClock.make("m4", { dispatchUs: 100, tflops: 1 })
    // Four evals of no work submitted together all finish one dispatch floor later.
    expect([0, 0, 0, 0].map(() => clock.deadline(0, 0))).toEqual([0.1, 0.1, 0.1, 0.1])
    // 1 GFLOP at 1 TFLOP/s is 1 ms of engine time; two such evals queue behind each other.
    const a = clock.deadline(10, 1e9), b = clock.deadline(10, 1e9)
    expect(a).toBeCloseTo(11.1, 9)
    expect(b).toBeCloseTo(12.1, 9)
  })
})

describe("SimBackend packages", () => {
  it.effect("runs a .mlmodelc directory with its weights/ folder", () =>
    withSim({ rules: "off" })(Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "sim-pkg-"))
      const pkg = join(dir, "scale.mlmodelc")
      mkdirSync(join(pkg, "weights"), { recursive: true })
      const blob = writeBlobFile([{ dtype: "fp16", data: new Float32Array([2, 3, 4, 5]) }])
      if (!("bytes" in blob)) throw blob
      writeFileSync(join(pkg, "weights", "weight.bin"), blob.bytes)
      writeFileSync(join(pkg, "model.mil"), program(
        "tensor<fp16, [1, 4, 1, 32]> x",
        `    tensor<fp16, [1, 4, 1, 1]> s = const()[name = string("s"), val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
    tensor<fp16, [1, 4, 1, 32]> y = mul(x = x, y = s)[name = string("y")];`,
        "y"
      ))
      const m = yield* (yield* Backend).compile(CompileOptions.package({ path: pkg }))
      expect(m.kind).toBe("package")
      const l = m.inputs[0]!
      packSurface(l, new Float32Array(128).fill(1), views(m.request.inputs[0]!))
      yield* m.request.eval
      const y = new Float32Array(128)
      unpackSurface(m.outputs[0]!, views(m.request.outputs[0]!), y)
      expect([y[0], y[32], y[64], y[127]]).toEqual([2, 3, 4, 5])
    })))
})
