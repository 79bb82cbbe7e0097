/** The package barrel, exercised through the DESIGN.md example. */
import { expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { Ane, CompileOptions, DynamicMatmul, Linear, RequestPool, TensorLayout } from "../../src/index.js"
import { doubleText } from "./programs.js"

it.scoped("the package barrel runs the DESIGN.md example end to end on the simulator", () =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const info = yield* ane.info
    expect(info.backend).toBe("simulator")
    const model = yield* ane.compile(CompileOptions.mil({ text: doubleText(64, 512) }))
    expect(model.inputs[0]).toBeInstanceOf(TensorLayout)
    yield* model.writeInputF32(0, new Float32Array(64 * 512).fill(1.5))
    yield* model.eval
    expect((yield* model.readOutputF32(0))[100]).toBe(3)
    const ys = yield* Stream.make([new Float32Array(64 * 512).fill(2)], [new Float32Array(64 * 512).fill(-1)]).pipe(
      RequestPool.evalStream(model, { depth: 4 }),
      Stream.runCollect
    )
    expect(Array.from(ys, (y) => y[0]![7])).toEqual([4, -2])
  }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))

it.scoped("the README's dynamic-weights example runs through the barrel on the simulator", () =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    // Multiples of 1/8, so every y is a multiple of 1/64 with |y| ≤ 8: exact in fp16, float32 sums exact too.
    const x = Float32Array.from({ length: 8 * 256 }, (_, i) => ((i % 5) - 2) / 8)
    const w = Float32Array.from({ length: 256 * 512 }, (_, i) => ((i % 3) - 1) / 8)
    const step = (x: Float32Array, w: Float32Array) =>
      Effect.gen(function*() {
        const mm = yield* DynamicMatmul.make({ batch: 8, inDim: 256, outDim: 512 })
        const y = yield* mm.eval(x, w)
        const stats = yield* mm.evalInto(y, x, w)
        return { y, stats }
      })
    const { y, stats } = yield* step(x, w)
    expect(stats.executionNs).toBeGreaterThan(0)
    let want = 0
    for (let d = 0; d < 256; d++) want += x[3 * 256 + d]! * w[d * 512 + 100]!
    expect(y[3 * 512 + 100]).toBe(want)
    expect(yield* ane.compileCount).toBe(1)
    const linear = yield* Linear.makeDynamic()
    const y2 = yield* linear.linear(x.subarray(0, 256), w.subarray(0, 512 * 256), { batch: 1, inDim: 256, outDim: 512 })
    expect(y2.length).toBe(512)
  }).pipe(Effect.provide(Ane.layerSimulator({ latency: "off" }))))
