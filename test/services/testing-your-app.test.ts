/**
 * The "Testing your app" example of docs/services.md, run as a test: application code tested against
 * Ane.layerStub with @effect/vitest. The docs show it importing from "effect-ane" instead of "../../src/index.js".
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import {
  Ane,
  Backend,
  CompileBudgetExhaustedError,
  CompileError,
  CompileOptions,
  EvalError,
  MapError,
  ModelLoadError,
  NoAneError,
  RequestPool,
  UnsupportedLayoutError
} from "../../src/index.js"

// The application code under test: sums each feature vector on the engine, four evaluations in flight.
const scoreAll = (features: ReadonlyArray<Float32Array>) =>
  Effect.gen(function*() {
    const ane = yield* Ane.Ane
    const model = yield* ane.compile(CompileOptions.package({ path: "models/scorer.mlmodelc" }))
    const scores = yield* Stream.fromIterable(features).pipe(
      Stream.map((x) => [x]), // one Float32Array per model input
      RequestPool.evalStream(model, { depth: 4 }),
      Stream.map(([score]) => score![0]!), // one Float32Array per model output
      Stream.runCollect
    )
    return Array.from(scores)
  }).pipe(Effect.scoped)

// The stub: the model's inputs and outputs ([1, C, H, W], fp16 unless told), and what an evaluation computes.
const scorer: Ane.StubModel = {
  inputs: [{ name: "features", shape: [1, 16, 1, 1] }],
  outputs: [{ name: "score", shape: [1, 1, 1, 1] }],
  eval: ([features]) => [Float32Array.of(features!.reduce((sum, v) => sum + v, 0))]
}
const AneTest = Ane.layerStub({ models: { "scorer.mlmodelc": scorer } })

const filled = (value: number) => new Float32Array(16).fill(value)

layer(AneTest)("scoreAll on a stub model", (it) => {
  it.effect("scores every feature vector, in order", () =>
    Effect.gen(function*() {
      expect(yield* scoreAll([filled(1), filled(0.5), filled(-2)])).toEqual([16, 8, -32])
    }))

  it.scoped("the stub has the declared shapes and names, and checks lengths like the engine", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      expect((yield* ane.info).backend).toBe("stub")
      const model = yield* ane.compile(CompileOptions.package({ path: "models/scorer.mlmodelc" }))
      expect(model.inputs.map((l) => [l.name, l.channels, l.height, l.width, l.dtype])).toEqual([["features", 16, 1, 1, "fp16"]])
      const [score] = yield* model.run([filled(2)])
      expect(score![0]).toBe(32)
      const error = yield* Effect.flip(model.writeInputF32(0, new Float32Array(3)))
      expect(error._tag).toBe("InvalidArgumentError")
    }))

  it.effect("a model used after its scope is closed fails with ClosedError", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* Effect.scoped(ane.compile(CompileOptions.package({ path: "models/scorer.mlmodelc" })))
      const error = yield* Effect.flip(model.run([filled(1)]))
      expect(error._tag).toBe("ClosedError")
    }))
})

describe("scoreAll when the engine fails", () => {
  // Each typed error is a class constructed from its fields; `op` says which operation failed.
  it.effect("an evaluation error from the stub's eval", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(scoreAll([filled(1)]))
      expect(error).toBeInstanceOf(EvalError)
      expect(error.message).toContain("engine busy")
    }).pipe(Effect.provide(Ane.layerStub({
      models: {
        "scorer.mlmodelc": {
          ...scorer,
          eval: () => Effect.fail(new EvalError({ op: "Model.evalAsync", model: "scorer", hint: "engine busy" }))
        }
      }
    }))))

  it.effect("compile, load, map and layout errors in place of a model", () =>
    Effect.gen(function*() {
      const failures = [
        new CompileError({ op: "Ane.compile", model: "scorer", diagnostics: [] }),
        new ModelLoadError({ op: "Ane.compile", model: "scorer", code: 5 }),
        new MapError({ op: "Ane.compile", model: "scorer" }),
        new UnsupportedLayoutError({ op: "Ane.compile", tensor: "score", reason: "row stride below the width" })
      ]
      for (const failure of failures) {
        const error = yield* Effect.flip(scoreAll([filled(1)]).pipe(
          Effect.provide(Ane.layerStub({ models: { "scorer.mlmodelc": failure } }))
        ))
        expect(error._tag).toBe(failure._tag)
        expect(error.message).toBe(failure.message)
      }
    }))

  it.effect("a spent compile budget", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(scoreAll([filled(1)]))
      expect(error).toBeInstanceOf(CompileBudgetExhaustedError)
    }).pipe(Effect.provide(Ane.layerStub({ models: { "*": scorer }, compileLimit: 0 }))))

  it.effect("no engine at all: the client fails to build with NoAneError", () =>
    Effect.gen(function*() {
      const noEngine = Ane.layerBackend().pipe(
        Layer.provide(Backend.layerNoop({ probe: Effect.fail(new NoAneError({ op: "probe", reason: "not a Mac" })) }))
      )
      const error = yield* Effect.flip(scoreAll([filled(1)]).pipe(Effect.provide(noEngine)))
      expect(error).toBeInstanceOf(NoAneError)
    }))
})
