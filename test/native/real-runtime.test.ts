/**
 * What a real Mac does that a lenient fake would let slip, each checked over the stricter fake runtime: the
 * framework's temp folder (not $TMPDIR), shared `<tmp>/<hex>` folders, QoS 0, YES with an NSError, optional selectors
 * asked for first, IOSurface dictionaries and locks, and an x64 Node under Rosetta.
 */
import { existsSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Layer, Scope, Stream } from "effect"
import { platformProblem } from "../../src/native/NativeBackend.js"
import { folderUserCount } from "../../src/native/state.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import * as Chain from "../../src/services/Chain.js"
import * as RequestPool from "../../src/services/RequestPool.js"
import { Backend } from "../../src/services/Backend.js"
import { doubleText, pattern } from "../services/programs.js"
import { type AttributeTensor, checkAfterEach, expectClean, fakeLayer, loadFake, readOutput, writeInput } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const tensor = (name: string): AttributeTensor => ({
  Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: name
})

/** The fake evaluates by copying input to output; its attributes fit `doubleText(4, 32)`. */
const copyEngine = Effect.acquireRelease(
  Effect.sync(() => {
    fake.setEval(undefined)
    fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
    fake.reset()
  }),
  () => Effect.sync(() => fake.setAttributes(undefined))
)

/** Hides `line` from the fake for one test (respondsToSelector: answers NO; sending it would end the process). */
const hidden = (line: string) =>
  Effect.acquireRelease(Effect.sync(() => fake.hide(line)), () => Effect.sync(() => fake.resetTelemetry()))

const text = doubleText(4, 32)
const options = CompileOptions.mil({ text })

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

describe("the hardware backend against a runtime that behaves like a Mac", () => {
  it.scopedLive("writes model.mil into the model's localModelPath, never into $TMPDIR", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const hex = model.id.slice(4)
        expect(existsSync(join(fake.temporaryDirectory(), "ane-local", hex, "model.mil"))).toBe(true)
        expect(existsSync(join(tmpdir(), hex))).toBe(false)
      }))
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("without localModelPath, writes into NSTemporaryDirectory()/<hex>, which is not $TMPDIR", () =>
    Effect.gen(function*() {
      yield* copyEngine
      yield* hidden("-_ANEInMemoryModel localModelPath")
      const backend = yield* Backend
      let dir = ""
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        dir = join(fake.temporaryDirectory(), model.id.slice(4))
        expect(existsSync(join(dir, "model.mil"))).toBe(true)
        expect(existsSync(join(tmpdir(), model.id.slice(4)))).toBe(false)
      }))
      expect(existsSync(dir)).toBe(false)
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("a localModelPath that is not the model's own folder is not taken (it would be removed at close)", () =>
    Effect.gen(function*() {
      yield* copyEngine
      yield* Effect.acquireRelease(Effect.sync(() => fake.localPathParent(true)), () => Effect.sync(() => fake.localPathParent(false)))
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        expect(existsSync(join(fake.temporaryDirectory(), model.id.slice(4), "model.mil"))).toBe(true)
      }))
      expect(existsSync(fake.temporaryDirectory())).toBe(true)
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("two live models of one program share <tmp>/<hex>: it goes only when the last one closes", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      const a = yield* Scope.extend(backend.compile(options), first)
      const b = yield* Scope.extend(backend.compile(options), second)
      expect(a.id).toBe(b.id)
      const dir = join(fake.temporaryDirectory(), "ane-local", a.id.slice(4))
      expect(folderUserCount(dir)).toBe(2)
      yield* Scope.close(first, Exit.void)
      expect(existsSync(join(dir, "model.mil"))).toBe(true)
      // The survivor still evaluates.
      writeInput(b.request, 0, b.inputs[0]!, pattern(128, 3))
      yield* b.request.eval
      expect(Array.from(readOutput(b.request, 0, b.outputs[0]!))).toEqual(Array.from(pattern(128, 3)))
      yield* Scope.close(second, Exit.void)
      expect(existsSync(dir)).toBe(false)
      expect(folderUserCount(dir)).toBe(0)
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("QoS 0 reaches the framework as 21 (the fake refuses QOS_CLASS_UNSPECIFIED)", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.mil({ text, qos: 0 }))
        yield* model.request.eval
        yield* model.request.evalAsync
      }))
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("YES with an NSError left behind is a success: compile, load, map and evaluation", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      for (const stage of ["compile", "load", "map", "eval"] as const) fake.spuriousError(stage, 1, 10)
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        writeInput(model.request, 0, model.inputs[0]!, pattern(128, 1))
        yield* model.request.eval
        yield* model.request.evalAsync
        expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 1)))
      }))
      fake.reset()
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("a framework without the 9-argument request factory gets the 7-argument one, asked for first", () =>
    Effect.gen(function*() {
      yield* copyEngine
      yield* hidden(
        "+_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:"
      )
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        yield* model.request.eval
      }))
      expect(fake.log()).toContain("request (7 arguments)")
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("a shared event that does not answer waitUntilSignaledValue:timeoutMS: is refused typed, not sent", () =>
    Effect.gen(function*() {
      yield* hidden("-IOSurfaceSharedEvent waitUntilSignaledValue:timeoutMS:")
      const backend = yield* Backend
      const error = yield* failure(Effect.scoped(backend.createSharedEvent))
      expect(error._tag).toBe("EvalError")
      expect(error.message).toContain("does not answer waitUntilSignaledValue:timeoutMS:")
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("IOSurface properties go in a kCFType dictionary keyed by the framework's constants", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        yield* backend.compile(options)
        yield* backend.createSurface(100)
      }))
      const made = fake.log().filter((l) => l.startsWith("CFDictionaryCreate"))
      expect(made).toEqual(["CFDictionaryCreate kCFType", "CFDictionaryCreate kCFType", "CFDictionaryCreate kCFType"])
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))

  it.scopedLive("CPU access goes through IOSurfaceLock: a write lock to write, a read-only lock to read", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const request = model.request
        const view = request.inputs[0]!
        expect(fake.surfaceLocks(view)).toBe(0)
        request.access!("input", 0, "write", (bytes) => {
          expect(fake.surfaceLocks(view)).toBe(1)
          bytes[0] = 1
        })
        expect(fake.surfaceLocks(view)).toBe(0)
        // A read under the read-only lock that wrote anyway is caught at its unlock.
        request.access!("input", 0, "read", (bytes) => {
          bytes[1] = 2
        })
        expect(fake.surfaceMisuse("unlocked")).toBe(1)
        // A write through the raw view with no lock at all is caught before the next evaluation.
        view[2] = 3
        yield* request.eval
        expect(fake.surfaceMisuse("unlocked")).toBe(2)
        expect(() => request.access!("output", 1, "read", () => 0)).toThrow(RangeError)
        const surfaceScope = yield* Scope.make()
        const surface = yield* Scope.extend(backend.createSurface(64), surfaceScope)
        surface.access!("write", (bytes) => bytes.fill(7))
        expect(surface.access!("read", (bytes) => bytes[63])).toBe(7)
        yield* Scope.close(surfaceScope, Exit.void)
        expect(() => surface.access!("read", (bytes) => bytes[0])).toThrow("closed")
        fake.reset()
      }))
      yield* expectClean(fake)
    }).pipe(Effect.provide(fakeLayer(fake))))
})

describe("the Ane service over the hardware backend", () => {
  it.scopedLive("typed I/O writes and reads each surface under its lock", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* ane.compile(options)
        yield* model.writeInputF32(0, pattern(128, 5))
        yield* model.eval
        expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(pattern(128, 5)))
        yield* model.evalAsync
        expect(Array.from(yield* model.readOutputF32(0))).toEqual(Array.from(pattern(128, 5)))
      }))
      // An unlocked write would show as changed content at the evaluation that followed it.
      expect(fake.surfaceMisuse("unlocked")).toBe(0)
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provideMerge(fakeLayer(fake))))))

  it.scopedLive("a pipelined stream and a standalone surface copy under the surface lock too", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* ane.compile(options)
        const out = yield* Stream.range(0, 11).pipe(
          Stream.map((i) => [pattern(128, i)] as ReadonlyArray<Float32Array>),
          RequestPool.evalStream(model, { depth: 4 }),
          Stream.runCollect
        )
        Chunk.toReadonlyArray(out).forEach((o, i) => expect(Array.from(o[0]!)).toEqual(Array.from(pattern(128, i))))
        const surface = yield* ane.createSurface(256)
        yield* surface.write(new Uint8Array([1, 2, 3]), 10)
        expect(Array.from(yield* surface.read(10, 3))).toEqual([1, 2, 3])
        // The raw bytes are the same memory; a write there without the lock is what the fake would catch.
        expect(fake.surfaceMisuse("unlocked")).toBe(0)
      }))
      expect(fake.surfaceMisuse("unlocked")).toBe(0)
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provideMerge(fakeLayer(fake))))))
})

describe("chaining over the hardware backend", () => {
  it.scopedLive("Chain.copyOutputToInput copies under both surfaces' locks", () =>
    Effect.gen(function*() {
      yield* copyEngine
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const a = yield* ane.compile(options)
        const b = yield* ane.compile(options)
        yield* a.writeInputF32(0, pattern(128, 4))
        yield* a.eval
        yield* Chain.copyOutputToInput(a, b, { srcOutput: 0, srcChannel: 0, dstInput: 0, dstChannel: 0, channels: 4 })
        yield* b.eval
        expect(Array.from(yield* b.readOutputF32(0))).toEqual(Array.from(pattern(128, 4)))
      }))
      expect(fake.surfaceMisuse("unlocked")).toBe(0)
    }).pipe(Effect.provide(Ane.layerBackend().pipe(Layer.provideMerge(fakeLayer(fake))))))
})

describe("platforms that cannot reach the engine", () => {
  it("refuses an x64 Node under Rosetta, an Intel Mac and other systems, saying why", () => {
    expect(platformProblem("darwin", "arm64", false)).toBeUndefined()
    expect(platformProblem("darwin", "x64", true)).toContain("Rosetta")
    expect(platformProblem("darwin", "x64", true)).toContain("arm64 Node")
    expect(platformProblem("darwin", "x64", false)).toContain("Intel Mac")
    expect(platformProblem("linux", "x64", false)).toContain("platform linux is not macOS")
  })
})
