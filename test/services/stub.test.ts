/** Ane.layerStub: declared shapes and names, evaluation by a function, typed failures for bad stubs, handle counts. */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { Effect, Stream } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import {
  ClosedError,
  CompileBudgetExhaustedError,
  type CompileFailure,
  EvalError,
  InvalidArgumentError,
  SharedEventRequiresPackageError
} from "../../src/schema/errors.js"
import * as Ane from "../../src/services/Ane.js"
import type { Model } from "../../src/services/Model.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import * as SharedEvent from "../../src/services/SharedEvent.js"

const pkg = (path: string) => CompileOptions.package({ path })
const mil = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })
const compile = (o: CompileOptions) => Effect.flatMap(Ane.Ane, (ane) => ane.compile(o))

/** y = 2x + 1 over an fp32 [1, 2, 1, 3] tensor; z = sum(x) as fp16 [1]. */
const affine: Ane.StubModel = {
  inputs: [{ name: "x", shape: [1, 2, 1, 3], dtype: "fp32" }],
  outputs: [{ name: "y", shape: [2, 1, 3], dtype: "fp32" }, { name: "z", shape: [1] }],
  eval: ([x]) => [x!.map((v) => 2 * v + 1), Float32Array.of(x!.reduce((a, b) => a + b, 0))]
}
const x = Float32Array.of(0, 1, 2, 3, 4, 5)

describe("Ane.layerStub", () => {
  it.scoped("gives a compile the declared layouts, and evaluates with the stub's function on every path", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const model = yield* compile(pkg("/apps/models/affine.mlmodelc/"))
      expect(model.id).toBe("stub:/apps/models/affine.mlmodelc/")
      expect(model.inputs.map((l) => [l.name, l.channels, l.height, l.width, l.dtype])).toEqual([["x", 2, 1, 3, "fp32"]])
      expect(model.outputs.map((l) => [l.name, l.channels, l.height, l.width, l.dtype])).toEqual([
        ["y", 2, 1, 3, "fp32"],
        ["z", 1, 1, 1, "fp16"]
      ])
      const expected = [1, 3, 5, 7, 9, 11]
      const [y, z] = yield* model.run([x], { mode: "sync" })
      expect(Array.from(y!)).toEqual(expected)
      expect(z![0]).toBe(15)
      yield* model.writeInputF32(0, x)
      yield* model.evalAsync
      expect(Array.from(yield* model.readOutputF32(0))).toEqual(expected)
      const pool = yield* RequestPool.make(model, 2)
      const r = yield* pool.acquire
      expect(Array.from((yield* r.run([x]))[0]!)).toEqual(expected)
      const streamed = yield* Stream.make([x], [x.map((v) => -v)]).pipe(
        RequestPool.evalStream(model, { depth: 2 }),
        Stream.runCollect
      )
      expect(Array.from(streamed, ([y]) => y![0])).toEqual([1, 1])
      const event = yield* SharedEvent.make
      yield* model.writeInputF32(0, x.map(() => 1))
      yield* model.evalWithSignalEvent(event, 3n)
      expect(yield* event.signaledValue).toBe(3n)
      expect((yield* model.readOutputF32(1))[0]).toBe(6)
      expect(yield* ane.liveHandles).toBeGreaterThan(0)
    }).pipe(Effect.provide(Ane.layerStub({ models: { "affine.mlmodelc": affine } }))))

  it.effect("releases every handle when the scopes close", () =>
    Effect.gen(function*() {
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* compile(mil)
        yield* RequestPool.make(model, 3)
        yield* ane.createSurface(128)
        yield* SharedEvent.make
        expect(yield* ane.liveHandles).toBe(7) // model, its request, 3 pooled, surface, event
      }))
      expect(yield* ane.liveHandles).toBe(0)
      expect(yield* ane.compileCount).toBe(1)
    }).pipe(Effect.provide(Ane.layerStub({ models: { "*": affine } }))))

  it.scoped("picks a model by path, file name, \"*\" or a function, and fails typed when nothing matches", () =>
    Effect.gen(function*() {
      const one: Ane.StubModel = { inputs: [{ shape: [4] }], outputs: [{ shape: [4] }] }
      const byPath = yield* compile(pkg("a/b.mlmodelc")).pipe(
        Effect.provide(Ane.layerStub({ models: { "a/b.mlmodelc": one, "b.mlmodelc": affine } }))
      )
      expect(byPath.inputs[0]!.width).toBe(4)
      const byName = yield* compile(pkg("c/b.mlmodelc")).pipe(Effect.provide(Ane.layerStub({ models: { "b.mlmodelc": one } })))
      expect(byName.inputs[0]!.width).toBe(4)
      const byFn = yield* compile(mil).pipe(
        Effect.provide(Ane.layerStub({ models: (o) => o._tag === "mil" ? { ...one, id: "mine" } : undefined }))
      )
      expect(byFn.id).toBe("mine")
      // No eval function: outputs keep what they hold.
      yield* byFn.writeInputF32(0, Float32Array.of(1, 2, 3, 4))
      expect(Array.from((yield* byFn.run([Float32Array.of(1, 2, 3, 4)]))[0]!)).toEqual([0, 0, 0, 0])
      const missing = yield* Effect.flip(compile(pkg("z.mlmodelc")).pipe(
        Effect.provide(Ane.layerStub({ models: { "b.mlmodelc": one } }))
      ))
      expect(missing._tag).toBe("CompileError")
      expect(missing.message).toContain("z.mlmodelc")
      expect(missing.message).toContain("Ane.layerStub")
    }))

  it.scoped("refuses a badly declared stub with InvalidArgumentError naming the tensor", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [unknown, string, string]> = [
        [{ inputs: [{ shape: [2, 3, 1, 1] }], outputs: [] }, "stub model inputs[0].shape", "[2, 3, 1, 1]"],
        [{ inputs: [], outputs: [{ shape: [0] }] }, "stub model outputs[0].shape", "Array(1)"],
        [{ inputs: [{ shape: [1, 1, 1, 1, 1] }], outputs: [] }, "stub model inputs[0].shape", "Array(5)"],
        [{ inputs: [{ shape: [1.5] }], outputs: [] }, "stub model inputs[0].shape", "Array(1)"],
        [{ inputs: [{ shape: [4], dtype: "int8" }], outputs: [] }, "stub model inputs[0].dtype", "\"int8\""],
        [{ inputs: [{ shape: [65536, 65536] }], outputs: [] }, "stub model inputs[0].shape", "8589934592 bytes"],
        [{ outputs: [] }, "stub model inputs", "undefined"],
        [{ inputs: [], outputs: [], eval: 3 }, "stub model eval", "3"]
      ]
      for (const [model, argument, actual] of cases) {
        const error = yield* Effect.flip(compile(mil).pipe(
          Effect.provide(Ane.layerStub({ models: { "*": model as Ane.StubModel } }))
        ))
        expect(error).toMatchObject({ _tag: "InvalidArgumentError", op: "Ane.compile", argument, actual })
      }
    }))

  it.scoped("turns a bad result, a throw or a failure of the stub's eval into EvalError", () =>
    Effect.gen(function*() {
      const run = (evaluate: NonNullable<Ane.StubModel["eval"]>) =>
        Effect.flip(Effect.flatMap(compile(mil), (m: Model) => m.run([x])).pipe(
          Effect.provide(Ane.layerStub({ models: { "*": { ...affine, eval: evaluate } } }))
        ))
      const count = yield* run(() => [new Float32Array(6)])
      expect(count).toMatchObject({ _tag: "EvalError" })
      expect(count.message).toContain("expected an array of 2 Float32Arrays")
      const length = yield* run(() => [new Float32Array(6), new Float32Array(2)])
      expect(length.message).toContain("output 1, expected a Float32Array of 1 elements")
      const thrown = yield* run(() => {
        throw new Error("bug in the test")
      })
      expect(thrown).toMatchObject({ _tag: "EvalError", hint: "the stub's eval function threw" })
      const failed = yield* run(() => Effect.fail(new EvalError({ op: "Model.eval", model: "m", code: 3 })))
      expect(failed).toMatchObject({ _tag: "EvalError", code: 3 })
    }))

  it.scoped("fails a compile with the error a models entry holds (the constructors the docs list)", () =>
    Effect.gen(function*() {
      const failures: ReadonlyArray<CompileFailure> = [
        new CompileBudgetExhaustedError({ op: "Ane.compile", used: 119, limit: 119 }),
        new InvalidArgumentError({ op: "Ane.compile", argument: "path", expected: "a package", actual: "a file" })
      ]
      for (const failure of failures) {
        const error = yield* Effect.flip(compile(pkg("m.mlmodelc")).pipe(
          Effect.provide(Ane.layerStub({ models: (o) => o._tag === "package" ? failure : undefined }))
        ))
        expect(error._tag).toBe(failure._tag)
        expect(error.message).toBe(failure.message)
      }
      expect(new ClosedError({ op: "Model.eval", resource: "model stub:m" }).message).toContain("Model.eval")
      expect(new SharedEventRequiresPackageError({ op: "Model.evalWithSignalEvent", model: "m" })._tag)
        .toBe("SharedEventRequiresPackageError")
    }))

  it("the \"Testing your app\" example in docs/services.md is the code of testing-your-app.test.ts", () => {
    const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8")
    const file = read("./testing-your-app.test.ts")
    const code = file.slice(file.indexOf("import { describe")).replace("\"../../src/index.js\"", "\"effect-ane\"").trimEnd()
    const docs = read("../../docs/services.md")
    const start = docs.indexOf("```ts\n", docs.indexOf("A complete test file")) + "```ts\n".length
    expect(docs.slice(start, docs.indexOf("```", start)).trimEnd()).toBe(code)
  })
})
