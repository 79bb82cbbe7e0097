import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Scope } from "effect"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { DeviceInfo } from "../../src/schema/DeviceInfo.js"
import { Backend, stubModel } from "../../src/services/Backend.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { doubleText, pattern } from "../services/programs.js"
import { attributeOf, checkAfterEach, expectClean, fakeLayer, loadFake, readOutput, writeInput } from "./fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const fake = loadFake()
checkAfterEach(fake)

const layerWith = () => fakeLayer(fake)

const text = doubleText(4, 32)
const options = CompileOptions.mil({ text })


/** The fake evaluates like the engine: the simulator runs the same MIL on the surfaces' bytes. */
const engine = Effect.gen(function*() {
  fake.resetTelemetry()
  const sim = yield* SimBackend.make({ rules: "warn", latency: "off" })
  const simModel = yield* sim.compile(options)
  fake.setAttributes({ inputs: simModel.inputs.map(attributeOf), outputs: simModel.outputs.map(attributeOf) })
  let evals = 0
  fake.setEval((_hex, inputs, outputs) => {
    evals++
    simModel.inputs.forEach((l, i) => simModel.request.inputs[i]!.set(new Uint8Array(koffi.view(inputs[i]!, l.allocSize))))
    if (Exit.isFailure(Effect.runSyncExit(simModel.request.eval))) return 1
    simModel.outputs.forEach((l, i) => new Uint8Array(koffi.view(outputs[i]!, l.allocSize)).set(simModel.request.outputs[i]!))
    return 0
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      fake.setEval(undefined)
      fake.setAttributes(undefined)
      fake.resetTelemetry()
      fake.reset()
    })
  )
  return { evals: () => evals }
})

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

const RT_EVAL = "-_ANEClient evaluateRealTimeWithModel:options:request:error:"
/** Real-time messages and the fake's real-time evaluation lines, in order. */
const realTime = () => fake.log().filter((l) => /RealTime|^realtime /.test(l) && !l.includes("respondsToSelector"))
/** Protocol lines: _ANE* messages other than retain/release, and the fake's real-time evaluation lines. */
const protocol = () => fake.log().filter((l) => (l.includes("_ANE") && !/ (retain|release)$/.test(l)) || l.startsWith("realtime "))

/** Collects the text of every warning logged while the test runs. */
const warningsLogger = () => {
  const warnings: Array<string> = []
  const layer = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
  )
  return { warnings, layer }
}

const packageDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-pkg-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("real-time tasks over the fake runtime", () => {
  it.scopedLive("begin once, evaluate the inner model's request 0, end once at scope close, nothing after", () =>
    Effect.gen(function*() {
      const { evals } = yield* engine
      const backend = yield* Backend
      const liveBefore = fake.live()
      const orphansBefore = fake.orphans()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const extra = yield* model.mapRequest
        const [inL, outL] = [model.inputs[0]!, model.outputs[0]!]
        writeInput(model.request, 0, inL, pattern(128, 1))
        writeInput(extra, 0, inL, pattern(128, 2))
        const handles = yield* backend.liveHandles
        fake.reset()
        const scope = yield* Scope.make()
        const task = yield* Scope.extend(backend.beginRealTimeTask, scope)
        expect(yield* backend.liveHandles).toBe(handles + 1)
        expect(fake.realTimeActive()).toBe(1)
        yield* task.eval(model)
        expect(Array.from(readOutput(model.request, 0, outL))).toEqual(Array.from(pattern(128, 1), (x) => 2 * x))
        writeInput(model.request, 0, inL, pattern(128, 3))
        yield* task.eval(model)
        expect(Array.from(readOutput(model.request, 0, outL))).toEqual(Array.from(pattern(128, 3), (x) => 2 * x))
        // The extra request was never evaluated: its outputs are still zero.
        expect(Array.from(readOutput(extra, 0, outL))).toEqual(new Array(128).fill(0))
        expect(evals()).toBe(2)
        yield* Scope.close(scope, Exit.void)
        expect(fake.realTimeActive()).toBe(0)
        expect(yield* backend.liveHandles).toBe(handles)
        const hex = model.id.slice("mil:".length)
        expect(protocol()).toEqual([
          "+_ANEClient respondsToSelector:",
          "+_ANEClient respondsToSelector:",
          "+_ANEClient sharedConnection",
          "-_ANEClient respondsToSelector:",
          "-_ANEClient respondsToSelector:",
          "-_ANEClient respondsToSelector:",
          "-_ANEClient beginRealTimeTask",
          RT_EVAL,
          `realtime ${hex}`,
          RT_EVAL,
          `realtime ${hex}`,
          "-_ANEClient endRealTimeTask"
        ])
        const sent = fake.log().length
        const closed = yield* failure(task.eval(model))
        expect(closed._tag).toBe("ClosedError")
        expect(closed).toMatchObject({ op: "RealTimeTask.eval" })
        expect(closed._tag === "ClosedError" ? closed.resource : "").toMatch(/^real-time task \d+$/)
        expect(fake.log().length).toBe(sent)
      }))
      expect(fake.live()).toBe(liveBefore)
      expect(fake.orphans()).toBe(orphansBefore)
      expect(fake.realTimeActive()).toBe(0)
      yield* expectClean(fake)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("a package model is evaluated with its own _ANEModel", () =>
    Effect.gen(function*() {
      const { evals } = yield* engine
      const path = yield* packageDir
      const backend = yield* Backend
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.package({ path }))
        const task = yield* backend.beginRealTimeTask
        writeInput(model.request, 0, model.inputs[0]!, pattern(128, 6))
        fake.reset()
        yield* task.eval(model)
        expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 6), (x) => 2 * x))
        expect(evals()).toBe(1)
        expect(realTime()).toEqual([RT_EVAL, expect.stringMatching(/^realtime [0-9a-f]{16}$/)])
      }))
      expect(realTime().at(-1)).toBe("-_ANEClient endRealTimeTask")
      expect(fake.live()).toBe(before)
      yield* expectClean(fake)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("a closed model is a ClosedError like its plain eval; nothing is sent", () =>
    Effect.gen(function*() {
      yield* engine
      const backend = yield* Backend
      const before = fake.live()
      const task = yield* backend.beginRealTimeTask
      const scope = yield* Scope.make()
      const model = yield* Scope.extend(backend.compile(options), scope)
      yield* Scope.close(scope, Exit.void)
      fake.reset()
      const error = yield* failure(task.eval(model))
      const plain = yield* failure(model.request.eval)
      expect(error).toMatchObject({ _tag: "ClosedError", op: "RealTimeTask.eval", resource: `model ${model.id}` })
      expect(plain).toMatchObject({ _tag: "ClosedError", resource: `model ${model.id}` })
      expect(fake.log()).toEqual([])
      expect(fake.live()).toBe(before)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("an injected NO is an EvalError with the NSError's domain and code; the task stays usable", () =>
    Effect.gen(function*() {
      const { evals } = yield* engine
      const backend = yield* Backend
      const model = yield* backend.compile(options)
      const task = yield* backend.beginRealTimeTask
      fake.reset()
      fake.fail("rt-eval", 1, 1, 77)
      const error = yield* failure(task.eval(model))
      expect(error).toMatchObject({
        _tag: "EvalError",
        op: "RealTimeTask.eval",
        model: model.id,
        domain: "com.apple.appleneuralengine",
        code: 77
      })
      expect(error._tag === "EvalError" ? error.hint : "").toContain("evaluateRealTimeWithModel:options:request:error: failed")
      expect(evals()).toBe(0)
      writeInput(model.request, 0, model.inputs[0]!, pattern(128, 8))
      yield* task.eval(model)
      expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 8), (x) => 2 * x))
      expect(evals()).toBe(1)
      expect(fake.rejected()).toBe(0)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("a model of another backend or a stub is refused with an EvalError before any message", () =>
    Effect.gen(function*() {
      yield* engine
      const backend = yield* Backend
      // Built in the test's scope: a backend's client goes when its layer's scope closes.
      const other = Context.get(yield* Layer.build(layerWith()), Backend)
      const foreign = yield* other.compile(options)
      const ours = yield* backend.compile(options)
      const task = yield* backend.beginRealTimeTask
      fake.reset()
      for (const model of [foreign, stubModel(options)]) {
        const error = yield* failure(task.eval(model))
        expect(error).toMatchObject({ _tag: "EvalError", op: "RealTimeTask.eval", model: model.id })
        expect(error._tag === "EvalError" ? error.hint : "").toContain("not compiled by this hardware backend")
      }
      expect(fake.log()).toEqual([])
      // The other backend's own task accepts its model, and ours accepts ours.
      yield* (yield* other.beginRealTimeTask).eval(foreign)
      yield* task.eval(ours)
      expect(realTime().filter((l) => l === RT_EVAL)).toHaveLength(2)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("beginRealTimeTask answering NO is an EvalError; nothing is ended and no handle is held", () =>
    Effect.gen(function*() {
      yield* engine
      const backend = yield* Backend
      fake.reset()
      fake.fail("rt-begin", 1, 1, 0)
      const error = yield* failure(Effect.scoped(backend.beginRealTimeTask))
      expect(error).toMatchObject({ _tag: "EvalError", op: "beginRealTimeTask" })
      expect(error.hint).toContain("beginRealTimeTask] returned NO")
      expect(realTime()).toEqual(["-_ANEClient beginRealTimeTask"])
      expect(yield* backend.liveHandles).toBe(0)
      expect(fake.realTimeActive()).toBe(0)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("no client, or a client without the real-time selectors, is an EvalError before beginning", () =>
    Effect.gen(function*() {
      yield* engine
      fake.reset()
      fake.hide("-_ANEClient endRealTimeTask")
      const missing = yield* failure(Effect.scoped(Effect.flatMap(Backend, (b) => b.beginRealTimeTask)).pipe(Effect.provide(layerWith())))
      expect(missing).toMatchObject({ _tag: "EvalError", op: "beginRealTimeTask" })
      expect(missing.hint).toContain("does not answer endRealTimeTask")
      for (const step of ["sharedConnection", "alloc", "new"] as const) fake.clientStep(step, "nil")
      const none = yield* failure(Effect.scoped(Effect.flatMap(Backend, (b) => b.beginRealTimeTask)).pipe(Effect.provide(layerWith())))
      expect(none).toMatchObject({ _tag: "EvalError", op: "beginRealTimeTask" })
      expect(none.hint).toContain("sharedConnection")
      expect(realTime()).toEqual([])
      expect(fake.rejected()).toBe(0)
      const info = DeviceInfo.make({
        hasAne: true, numCores: 16, architecture: "h16", product: "p", buildVersion: "b", isVm: false, numAnes: 1,
        subType: "", boardType: 0, internalBuild: false, backend: "hardware"
      })
      const bare = yield* failure(Effect.scoped(NativeBackend.makeBackend(info).beginRealTimeTask))
      expect(bare).toMatchObject({ _tag: "EvalError", op: "beginRealTimeTask" })
    }))

  it.scopedLive("endRealTimeTask answering NO is only logged: the scope closes and the task is closed", () => {
    const { warnings, layer } = warningsLogger()
    return Effect.gen(function*() {
      yield* engine
      const backend = yield* Backend
      const model = yield* backend.compile(options)
      const handles = yield* backend.liveHandles
      fake.reset()
      fake.fail("rt-end", 1, 1, 0)
      const scope = yield* Scope.make()
      const task = yield* Scope.extend(backend.beginRealTimeTask, scope)
      expect(warnings).toEqual([])
      const exit = yield* Effect.exit(Scope.close(scope, Exit.void))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/endRealTimeTask\] returned NO for real-time task \d+/)
      expect(realTime()).toEqual(["-_ANEClient beginRealTimeTask", "-_ANEClient endRealTimeTask"])
      const error = yield* failure(task.eval(model))
      expect(error._tag).toBe("ClosedError")
      expect(realTime()).toHaveLength(2)
      expect(yield* backend.liveHandles).toBe(handles)
    }).pipe(Effect.provide(Layer.merge(layerWith(), layer)))
  })
})
