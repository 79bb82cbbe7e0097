/**
 * Runs on the real ANE (macOS, `npm run test:hardware`): the same programs on the engine and on the simulator must
 * report the same layouts and agree numerically. Off macOS every test fails with NoAneError, by design.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer, Stream } from "effect"
import { Ane, CompileOptions, DynamicMatmul, Generators, RequestPool } from "../../src/index.js"

const linear = Generators.linear({ inDim: 64, outDim: 64, seq: 768 })
const options = CompileOptions.mil({ text: linear.text, weights: linear.weights })

const input = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5)

/** Compiles `options` on a backend, runs one eval and returns layouts and the first output. */
const runOn = <E>(layer: Layer.Layer<Ane.Ane, E>) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const info = yield* ane.info
    const model = yield* ane.compile(options)
    yield* model.writeInputF32(0, input(model.inputs[0]!.logicalElements))
    yield* model.eval
    const y = yield* model.readOutputF32(0)
    return { info, inputs: model.inputs, outputs: model.outputs, y }
  }).pipe(Effect.scoped, Effect.provide(layer))

describe("the ANE hardware", () => {
  it.effect("is present and reports itself as hardware", () =>
    Effect.gen(function*() {
      const info = yield* Effect.flatMap(Ane.Ane, (ane) => ane.info).pipe(Effect.provide(Ane.layer))
      expect(info.backend).toBe("hardware")
      expect(info.hasAne).toBe(true)
      expect(info.numCores).toBeGreaterThan(0)
    }))

  it.effect("reports the layouts the simulator reports, and agrees with it within fp16 accumulation error", () =>
    Effect.gen(function*() {
      const hw = yield* runOn(Ane.layer)
      const sim = yield* runOn(Ane.layerSimulator({ latency: "off" }))
      expect(hw.inputs.map((l) => [l.channels, l.height, l.width, l.elemSize, l.rowStride, l.planeStride]))
        .toEqual(sim.inputs.map((l) => [l.channels, l.height, l.width, l.elemSize, l.rowStride, l.planeStride]))
      expect(hw.outputs.map((l) => [l.channels, l.height, l.width, l.elemSize, l.rowStride, l.planeStride]))
        .toEqual(sim.outputs.map((l) => [l.channels, l.height, l.width, l.elemSize, l.rowStride, l.planeStride]))
      // 64-term dot products of |x| ≤ 0.5 with small weights: a few fp16 ulps of the result at most.
      for (let i = 0; i < hw.y.length; i++) expect(Math.abs(hw.y[i]! - sim.y[i]!)).toBeLessThan(4e-3 + 4e-3 * Math.abs(sim.y[i]!))
    }))

  it.effect("pipelines evaluations in order through a request pool", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(options)
      const n = model.inputs[0]!.logicalElements
      const xs = Array.from({ length: 16 }, (_, k) => [input(n).map((v) => v * (k + 1) / 16)])
      const ys = yield* Stream.runCollect(Stream.fromIterable(xs).pipe(RequestPool.evalStream(model, { depth: 4 })))
      const outs = Array.from(ys)
      expect(outs).toHaveLength(16)
      // Linear in x: output k is (k + 1) / 16 of output 15, up to fp16 rounding.
      const last = outs[15]![0]!
      for (let k = 0; k < 16; k++) {
        const y = outs[k]![0]!
        for (let i = 0; i < y.length; i += 97) expect(Math.abs(y[i]! - last[i]! * (k + 1) / 16)).toBeLessThan(1e-2)
      }
    }).pipe(Effect.scoped, Effect.provide(Ane.layer)))

  it.effect("counts compiles against the budget and releases every handle", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const before = yield* ane.compileCount
      yield* Effect.scoped(ane.compile(options))
      expect(yield* ane.compileCount).toBe(before + 1)
      expect(yield* ane.liveHandles).toBe(0)
    }).pipe(Effect.provide(Ane.layer)))

  it.effect("reports the engine's execution time, diagnostics and client info", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const client = yield* ane.clientInfo
      expect(client.numCores).toBeGreaterThan(0)
      const model = yield* ane.compile(CompileOptions.mil({ text: linear.text, weights: linear.weights, perfStatsMask: 0xf }))
      yield* model.writeInputF32(0, input(model.inputs[0]!.logicalElements))
      const first = yield* model.evalWithStats
      const second = yield* model.evalWithStats
      expect(first.source).toBe("hardware")
      expect(second.hwExecutionNs).toBeGreaterThan(0)
      // The outputs are those of a plain eval.
      const y = yield* model.readOutputF32(0)
      yield* model.eval
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(y))
      const diagnostics = yield* model.diagnostics
      expect(diagnostics.programClass).toBe("ANEInMemoryModel")
    }).pipe(Effect.scoped, Effect.provide(Ane.layer)))

  it.effect("evaluates through a real-time task like a plain eval", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* ane.compile(options)
      const x = input(model.inputs[0]!.logicalElements)
      yield* model.writeInputF32(0, x)
      yield* model.eval
      const plain = yield* model.readOutputF32(0)
      yield* model.writeInputF32(0, new Float32Array(x.length))
      const task = yield* ane.beginRealTimeTask
      yield* model.writeInputF32(0, x)
      yield* task.eval(model)
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(plain))
    }).pipe(Effect.scoped, Effect.provide(Ane.layer)))

  it.effect("chains two models through one shared surface with no copy", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const double = CompileOptions.mil({ text: `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 512]> x) {
        tensor<fp16, [1, 64, 1, 512]> y = add(x = x, y = x)[name = string("y")];
    } -> (y);
}
` })
      const a = yield* ane.compile(double)
      const b = yield* ane.compile(double)
      const size = Math.max(a.outputs[0]!.allocSize, b.inputs[0]!.allocSize)
      const [s1, s2, s3] = yield* Effect.all([ane.createSurface(size), ane.createSurface(size), ane.createSurface(size)])
      const ra = yield* a.bindRequest({ inputs: [s1], outputs: [s2] })
      const rb = yield* b.bindRequest({ inputs: [s2], outputs: [s3] })
      const x = Float32Array.from({ length: 64 * 512 }, (_, i) => (i % 64) - 32)
      yield* ra.writeInputF32(0, x)
      yield* ra.eval
      yield* rb.eval
      expect(Array.from(yield* rb.readOutputF32(0))).toEqual(Array.from(x, (v) => 4 * v))
    }).pipe(Effect.scoped, Effect.provide(Ane.layer)))

  it.effect("runs DynamicMatmul like the simulator, the tiles it compiles included", () =>
    Effect.gen(function*() {
      const sizes = { batch: 32, inDim: 256, outDim: 1000 }
      const x = input(sizes.batch * sizes.inDim)
      const w = Float32Array.from({ length: sizes.inDim * sizes.outDim }, (_, i) => Math.cos(i * 0.11) * 0.05)
      const on = <E>(layer: Layer.Layer<Ane.Ane, E>) =>
        Effect.gen(function*() {
          const mm = yield* DynamicMatmul.make(sizes)
          return { tiles: mm.tiles, y: yield* mm.eval(x, w) }
        }).pipe(Effect.scoped, Effect.provide(layer))
      const hw = yield* on(Ane.layer)
      const sim = yield* on(Ane.layerSimulator({ latency: "off" }))
      // The engine may refuse the full width and tile; the simulator compiles it whole. The values must agree.
      expect(hw.tiles.reduce((n, t) => n + t.width, 0)).toBe(sizes.outDim)
      // 256-term dot products of |x| ≤ 0.5 and |w| ≤ 0.05, fp16 storage: a few fp16 ulps.
      for (let i = 0; i < hw.y.length; i++) expect(Math.abs(hw.y[i]! - sim.y[i]!)).toBeLessThan(4e-3 + 4e-3 * Math.abs(sim.y[i]!))
    }))
})
