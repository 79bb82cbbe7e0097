/** Ane and Model over a controllable fake backend: budget, validation, typed I/O, bad arguments, use after close. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import type { AneError } from "../../src/schema/errors.js"
import * as Ane from "../../src/services/Ane.js"
import type { Model } from "../../src/services/Model.js"
import { f32Layout, makeFake, paddedLayout } from "./fakeBackend.js"

const program = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })

const withFake = (options: Parameters<typeof makeFake>[0] = {}) => {
  const fake = makeFake(options)
  return { fake, layer: Ane.layerBackend().pipe(Layer.provide(fake.layer)) }
}

const ramp = (n: number, scale = 0.5) => Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale)

describe("Ane", () => {
  it.effect("reports the backend's device info", () => {
    const { layer } = withFake()
    return Effect.gen(function*() {
      const info = yield* (yield* Ane.Ane).info
      expect(info.backend).toBe("stub")
      expect(info.hasAne).toBe(true)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("validates options before compiling and spends no budget on bad ones", () => {
    const { fake, layer } = withFake()
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const error = yield* Effect.flip(ane.compile(CompileOptions.mil({ text: program.text, qos: 99 })))
      expect(error._tag).toBe("InvalidArgumentError")
      expect(error).toMatchObject({ op: "Ane.compile", argument: "qos", actual: "99" })
      const empty = yield* Effect.flip(ane.compile(CompileOptions.mil({ text: "  " })))
      expect(empty).toMatchObject({ _tag: "InvalidArgumentError", argument: "text" })
      expect(fake.stats.counts.compile).toBe(0)
      expect(yield* ane.compileCount).toBe(0)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("counts compiles against the budget and refuses past it", () => {
    const { layer } = withFake({ compileLimit: 2 })
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      expect(yield* ane.remainingBudget).toBe(2)
      const { model, stats } = yield* ane.compileWithStats(program)
      expect(stats.totalNs).toBe(15)
      expect(model.stats).toBe(stats)
      yield* ane.compile(program)
      expect(yield* ane.compileCount).toBe(2)
      expect(yield* ane.remainingBudget).toBe(0)
      const error = yield* Effect.flip(ane.compile(program))
      expect(error).toMatchObject({ _tag: "CompileBudgetExhaustedError", used: 2, limit: 2, op: "Ane.compile" })
    }).pipe(Effect.provide(layer))
  })

  it.scoped("creates surfaces with checked reads and writes", () => {
    const { layer } = withFake()
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const bad = yield* Effect.flip(ane.createSurface(0))
      expect(bad).toMatchObject({ _tag: "InvalidArgumentError", argument: "bytes", actual: "0" })
      const s = yield* ane.createSurface(16)
      expect(s.size).toBe(16)
      yield* s.write(Uint8Array.of(1, 2, 3), 13)
      expect(Array.from(yield* s.read(12))).toEqual([0, 1, 2, 3])
      const over = yield* Effect.flip(s.write(Uint8Array.of(1, 2, 3), 14))
      expect(over).toMatchObject({ _tag: "InvalidArgumentError", argument: "length" })
      expect(Array.from(yield* s.read(14))).toEqual([2, 3])
      const neg = yield* Effect.flip(s.read(-1))
      expect(neg).toMatchObject({ argument: "offset", actual: "-1" })
    }).pipe(Effect.provide(layer))
  })
})

describe("Model typed I/O", () => {
  const compiled = <A, E>(f: (model: Model) => Effect.Effect<A, E>, options: Parameters<typeof makeFake>[0] = {}) => {
    const { layer } = withFake(options)
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(program)
      return yield* f(model)
    }).pipe(Effect.provide(layer), Effect.scoped)
  }

  it.effect("exposes layouts and counts", () =>
    compiled((model) =>
      Effect.sync(() => {
        expect(model.inputCount).toBe(2)
        expect(model.outputCount).toBe(2)
        expect(model.inputs[0]).toBe(paddedLayout)
        expect(model.outputs[1]).toBe(f32Layout)
        expect(model.kind).toBe("mil")
      })
    ))

  it.effect("round-trips f32 data through an fp16 padded surface and an fp32 surface", () =>
    compiled((model) =>
      Effect.gen(function*() {
        const a = ramp(paddedLayout.logicalElements)
        const b = Float32Array.of(1.1, -2.2, 3.3, 1e-8, 5, 6, 7, 8)
        yield* model.writeInputF32(0, a)
        yield* model.writeInputF32(1, b)
        yield* model.eval
        expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(a))
        const into = new Float32Array(8)
        yield* model.readOutputF32Into(1, into)
        expect(Array.from(into)).toEqual(Array.from(b))
        // Stride padding: the second row of channel 0 starts at byte 64, not 10.
        const raw = yield* model.readOutput(0)
        expect(raw.length).toBe(paddedLayout.allocSize)
        // a[5] = (5 - 15) × 0.5 = -5, fp16 0xc500 (sign, exponent 17, mantissa 0.25)
        expect(new DataView(raw.buffer).getUint16(64, true)).toBe(0xc500)
      })
    ))

  it.effect("writes and reads channel subsets without touching other channels", () =>
    compiled((model) =>
      Effect.gen(function*() {
        const plane = paddedLayout.planeElements
        yield* model.writeInputF32Channels(0, 1, Float32Array.from({ length: plane }, () => 2))
        yield* model.eval
        const all = yield* model.readOutputF32(0)
        expect(Array.from(all.subarray(0, plane)).every((x) => x === 0)).toBe(true)
        expect(Array.from(all.subarray(plane, 2 * plane)).every((x) => x === 2)).toBe(true)
        expect(Array.from(all.subarray(2 * plane)).every((x) => x === 0)).toBe(true)
        const ch = yield* model.readOutputF32Channels(0, 1, 2)
        expect(ch.length).toBe(2 * plane)
        expect(ch[0]).toBe(2)
        expect(ch[plane]).toBe(0)
        const bits = yield* model.readOutputFP16Channels(0, 1, 1)
        expect(bits[0]).toBe(0x4000)
      })
    ))

  it.effect("moves fp16 bit patterns verbatim", () =>
    compiled((model) =>
      Effect.gen(function*() {
        const bits = Uint16Array.from({ length: paddedLayout.logicalElements }, (_, i) => 0x3c00 + i)
        yield* model.writeInputFP16(0, bits)
        yield* model.writeInputFP16Channels(0, 2, Uint16Array.from({ length: paddedLayout.planeElements }, () => 0x7c00))
        yield* model.eval
        const out = yield* model.readOutputFP16(0)
        expect(out[0]).toBe(0x3c00)
        expect(out[2 * paddedLayout.planeElements]).toBe(0x7c00)
        const into = new Uint16Array(paddedLayout.logicalElements)
        yield* model.readOutputFP16Into(0, into)
        expect(Array.from(into)).toEqual(Array.from(out))
      })
    ))

  it.effect("copies raw surface images of exactly allocSize bytes", () =>
    compiled((model) =>
      Effect.gen(function*() {
        const img = Uint8Array.from({ length: f32Layout.allocSize }, (_, i) => i & 0xff)
        yield* model.writeInput(1, img)
        yield* model.eval
        expect(Array.from(yield* model.readOutput(1))).toEqual(Array.from(img))
        const dst = new Uint8Array(f32Layout.allocSize)
        yield* model.readOutputInto(1, dst)
        expect(Array.from(dst)).toEqual(Array.from(img))
        const views = yield* model.surfaces
        expect(views.inputs[1]![3]).toBe(3)
      })
    ))
})

describe("Model bad arguments (nothing is touched)", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly run: (m: Model) => Effect.Effect<unknown, AneError>
    readonly expect: Record<string, string>
  }> = [
    { name: "input index past the end", run: (m) => m.writeInputF32(2, new Float32Array(8)), expect: { argument: "input", actual: "2", expected: "an integer input index in [0, 2)" } },
    { name: "negative output index", run: (m) => m.readOutputF32(-1), expect: { argument: "output", actual: "-1" } },
    { name: "fractional index", run: (m) => m.readOutputFP16(0.5), expect: { argument: "output", actual: "0.5" } },
    { name: "short f32 data", run: (m) => m.writeInputF32(0, new Float32Array(3)), expect: { argument: "data", expected: "length 30 (3 channels × 2 × 5)", actual: "length 3" } },
    { name: "long f32 data", run: (m) => m.writeInputF32(1, new Float32Array(9)), expect: { argument: "data", actual: "length 9" } },
    { name: "wrong array type", run: (m) => m.writeInputF32(0, new Float64Array(30) as unknown as Float32Array), expect: { argument: "data", actual: "Float64Array(30)" } },
    { name: "fp16 write on an fp32 surface", run: (m) => m.writeInputFP16(1, new Uint16Array(8)), expect: { argument: "input 1", expected: "an fp16 tensor (elemSize 2)" } },
    { name: "fp16 read of an fp32 surface", run: (m) => m.readOutputFP16(1), expect: { argument: "output 1" } },
    { name: "short fp16 bits", run: (m) => m.writeInputFP16(0, new Uint16Array(29)), expect: { argument: "bits", actual: "length 29" } },
    { name: "raw write of the logical size instead of allocSize", run: (m) => m.writeInput(0, new Uint8Array(60)), expect: { argument: "bytes", actual: "length 60" } },
    { name: "raw read into a short buffer", run: (m) => m.readOutputInto(1, new Uint8Array(1)), expect: { argument: "bytes", actual: "length 1" } },
    { name: "readInto with a short dst", run: (m) => m.readOutputF32Into(0, new Float32Array(29)), expect: { argument: "dst", actual: "length 29" } },
    { name: "channel data not a multiple of H×W", run: (m) => m.writeInputF32Channels(0, 0, new Float32Array(11)), expect: { argument: "data.length", actual: "11" } },
    { name: "channel start past the end", run: (m) => m.writeInputF32Channels(0, 3, new Float32Array(10)), expect: { argument: "channelStart", actual: "3" } },
    { name: "channel range past the end", run: (m) => m.writeInputF32Channels(0, 2, new Float32Array(20)), expect: { argument: "channelCount", actual: "2" } },
    { name: "zero channels read", run: (m) => m.readOutputF32Channels(0, 0, 0), expect: { argument: "channelCount", actual: "0" } },
    { name: "negative channel start read", run: (m) => m.readOutputFP16Channels(0, -1, 1), expect: { argument: "channelStart", actual: "-1" } },
    { name: "fp16 channel write on fp32", run: (m) => m.writeInputFP16Channels(1, 0, new Uint16Array(4)), expect: { argument: "input 1" } },
    { name: "fp16 into a wrong-length dst", run: (m) => m.readOutputFP16Into(0, new Uint16Array(3)), expect: { argument: "dst" } }
  ]
  for (const c of cases) {
    it.scoped(`rejects ${c.name}`, () => {
      const fake = makeFake()
      return Effect.gen(function*() {
        const model = yield* (yield* Ane.Ane).compile(program)
        const before = (yield* model.surfaces).inputs.map((v) => v.slice())
        const error = yield* Effect.flip(c.run(model))
        expect(error._tag).toBe("InvalidArgumentError")
        expect(error).toMatchObject(c.expect)
        expect(error.op).toMatch(/^Model\./)
        const after = (yield* model.surfaces).inputs
        after.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(before[i]!)))
      }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
    })
  }
})

describe("Model after its scope closed", () => {
  it.effect("answers ClosedError to every call and releases its handles", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const scope = yield* Scope.make()
      const model = yield* Scope.extend(ane.compile(program), scope)
      expect(fake.stats.live).toBe(2)
      yield* Scope.close(scope, Exit.void)
      expect(fake.stats.live).toBe(0)
      const calls: ReadonlyArray<Effect.Effect<unknown, AneError>> = [
        model.eval, model.evalAsync, model.surfaces,
        model.writeInput(0, new Uint8Array(paddedLayout.allocSize)), model.readOutput(0),
        model.readOutputInto(0, new Uint8Array(paddedLayout.allocSize)),
        model.writeInputF32(0, new Float32Array(30)), model.writeInputF32Channels(0, 0, new Float32Array(10)),
        model.writeInputFP16(0, new Uint16Array(30)), model.writeInputFP16Channels(0, 0, new Uint16Array(10)),
        model.readOutputF32(0), model.readOutputF32Into(0, new Float32Array(30)), model.readOutputF32Channels(0, 0, 1),
        model.readOutputFP16(0), model.readOutputFP16Into(0, new Uint16Array(30)), model.readOutputFP16Channels(0, 0, 1)
      ]
      for (const call of calls) {
        const error = yield* Effect.flip(call)
        expect(error._tag).toBe("ClosedError")
        expect(error).toMatchObject({ resource: `model ${model.id}` })
      }
      const ev = yield* Effect.scoped(ane.createSharedEvent)
      for (const call of [model.evalWithSignalEvent(ev, 1n), model.evalWithWaitEvent(ev, 1n), model.evalBidirectional(ev, 0n, ev, 1n)]) {
        expect(yield* Effect.flip(call)).toMatchObject({ _tag: "ClosedError", resource: `model ${model.id}` })
      }
      // Even a bad argument answers ClosedError first: the model is gone.
      expect((yield* Effect.flip(model.readOutputF32(99)))._tag).toBe("ClosedError")
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provide(fake.layer))))
  })
})
