/** The package barrel, exercised through the DESIGN.md example. */
import { expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { Ane, CompileOptions, RequestPool, TensorLayout } from "../../src/index.js"
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
