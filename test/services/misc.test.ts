/** StateHandle, ModelCache, the shared-event package rule, opt-in eval spans, and the hardware backend off macOS. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Scope, TestClock, Tracer } from "effect"
import { DeviceInfo } from "../../src/schema/DeviceInfo.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import * as Ane from "../../src/services/Ane.js"
import * as ModelCache from "../../src/services/ModelCache.js"
import { TraceEvals } from "../../src/services/Model.js"
import * as StateHandle from "../../src/services/StateHandle.js"
import * as SharedEvent from "../../src/services/SharedEvent.js"
import { makeFake } from "./fakeBackend.js"

const program = CompileOptions.mil({ text: "program(1.3) { func main() {} }" })
const fakeLayer = (options: Parameters<typeof makeFake>[0] = {}) => {
  const fake = makeFake(options)
  return { fake, layer: Ane.layerBackend().pipe(Layer.provide(fake.layer)) }
}

describe("StateHandle", () => {
  it.scoped("advances, reports remaining, resets, and refuses to run past maxSeq", () => {
    const { layer } = fakeLayer()
    return Effect.gen(function*() {
      const model = yield* (yield* Ane.Ane).compile(program)
      const state = yield* StateHandle.make(model, 8)
      expect(yield* state.advance(5)).toBe(5)
      expect(yield* state.remaining).toBe(3)
      const over = yield* Effect.flip(state.advance(4))
      expect(over).toMatchObject({ _tag: "InvalidArgumentError", op: "StateHandle.advance", argument: "n", actual: "4", expected: "at most 3 (position 5 of 8)" })
      expect(yield* state.position).toBe(5)
      expect(yield* Effect.flip(state.advance(-1))).toMatchObject({ argument: "n", actual: "-1" })
      expect(yield* Effect.flip(state.advance(0.5))).toMatchObject({ argument: "n" })
      expect(yield* state.advance(3)).toBe(8)
      yield* state.reset
      expect(yield* state.position).toBe(0)
      expect(yield* Effect.flip(StateHandle.make(model, 0))).toMatchObject({ argument: "maxSeq", actual: "0" })
    }).pipe(Effect.provide(layer))
  })

  it.effect("answers ClosedError once the model is released", () => {
    const { layer } = fakeLayer()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const model = yield* Scope.extend(Effect.flatMap(Ane.Ane, (a) => a.compile(program)), scope)
      const state = yield* StateHandle.make(model, 4)
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.flip(state.advance(1))).toMatchObject({ _tag: "ClosedError", op: "StateHandle.advance" })
      expect(yield* Effect.flip(state.position)).toMatchObject({ _tag: "ClosedError" })
    }).pipe(Effect.provide(layer))
  })
})

describe("ModelCache", () => {
  const weights = (b: number) => CompileOptions.mil({ text: program.text, weights: Uint8Array.of(b, 2, 3) })

  it.effect("reuses a loaded model for the same content and spends no budget", () => {
    const { fake, layer } = fakeLayer()
    return Effect.gen(function*() {
      const cache = yield* ModelCache.ModelCache
      const a = yield* Effect.scoped(cache.get(weights(1)))
      const b = yield* Effect.scoped(cache.get(weights(1)))
      expect(b).toBe(a)
      expect(fake.stats.compiles).toBe(1)
      const c = yield* Effect.scoped(cache.get(weights(9)))
      expect(c).not.toBe(a)
      expect(fake.stats.compiles).toBe(2)
      expect(yield* cache.size).toBe(2)
      expect(yield* Effect.flip(Effect.scoped(cache.get(CompileOptions.mil({ text: "" }))))).toMatchObject({
        _tag: "InvalidArgumentError", op: "ModelCache.get"
      })
      // Idle entries are unloaded after the TTL.
      const before = fake.stats.live
      yield* TestClock.adjust("31 seconds")
      expect(yield* cache.size).toBe(0)
      expect(fake.stats.live).toBeLessThan(before)
      yield* Effect.scoped(cache.get(weights(1)))
      expect(fake.stats.compiles).toBe(3)
    }).pipe(Effect.provide(ModelCache.layer({ idleTimeToLive: "30 seconds" }).pipe(Layer.provideMerge(layer))))
  })

  it("keys on every input that changes the compiled program", () => {
    const base = ModelCache.contentKey(program)
    expect(ModelCache.contentKey(CompileOptions.mil({ text: program.text }))).toBe(base)
    expect(ModelCache.contentKey(CompileOptions.mil({ text: program.text, qos: 9 }))).not.toBe(base)
    expect(ModelCache.contentKey(CompileOptions.mil({ text: program.text + " " }))).not.toBe(base)
    expect(ModelCache.contentKey(CompileOptions.mil({ text: program.text, weights: [{ path: "a", bytes: Uint8Array.of(1) }] })))
      .not.toBe(ModelCache.contentKey(CompileOptions.mil({ text: program.text, weights: [{ path: "a1", bytes: new Uint8Array() }] })))
    expect(ModelCache.contentKey(CompileOptions.package({ path: "/m.mlmodelc" })))
      .not.toBe(ModelCache.contentKey(CompileOptions.package({ path: "/m.mlmodelc", modelKey: "t" })))
  })
})

describe("shared events: the package-only rule", () => {
  it.scoped("refuses in-memory MIL models when the backend supports events for packages only", () => {
    const { layer } = fakeLayer({ capabilities: { sharedEvents: "package-only", asyncEval: true } })
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const ev = yield* SharedEvent.make
      const mil = yield* ane.compile(program)
      const error = yield* Effect.flip(mil.evalWithSignalEvent(ev, 1n))
      expect(error).toMatchObject({ _tag: "SharedEventRequiresPackageError", op: "Model.evalWithSignalEvent", model: mil.id })
      const pkg = yield* ane.compile(CompileOptions.package({ path: "/x.mlmodelc" }))
      yield* pkg.evalWithSignalEvent(ev, 3n)
      expect(yield* ev.signaledValue).toBe(3n)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("fails with EvalError when the backend has no shared events at all", () => {
    const { layer } = fakeLayer({ capabilities: { sharedEvents: "none", asyncEval: true } })
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const ev = yield* SharedEvent.make
      const pkg = yield* ane.compile(CompileOptions.package({ path: "/x.mlmodelc" }))
      expect(yield* Effect.flip(pkg.evalBidirectional(ev, 0n, ev, 1n))).toMatchObject({ _tag: "EvalError", op: "Model.evalBidirectional" })
    }).pipe(Effect.provide(layer))
  })
})

describe("tracing", () => {
  /** Wraps the current tracer, recording span names. */
  const recording = (names: Array<string>) =>
    Effect.map(Effect.tracer, (base) =>
      Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          names.push(name)
          return base.span(name, parent, context, links, startTime, kind, options)
        },
        context: (f, fiber) => base.context(f, fiber)
      }))

  it.scoped("spans compiles always and evals only when asked", () => {
    const { layer } = fakeLayer()
    const names: Array<string> = []
    return Effect.gen(function*() {
      const ane = yield* Ane.Ane
      const plain = yield* ane.compile(program)
      yield* plain.eval
      expect(names).toContain("Ane.compile")
      expect(names).not.toContain("Model.eval")
      const traced = yield* Effect.provideService(ane.compile(program), TraceEvals, true)
      yield* traced.eval
      yield* traced.evalAsync
      expect(names).toContain("Model.eval")
      expect(names).toContain("Model.evalAsync")
    }).pipe(Effect.provide(layer), (e) => Effect.flatMap(recording(names), (tracer) => Effect.withTracer(e, tracer)))
  })
})

describe("NativeBackend", () => {
  it.effect("fails with NoAneError naming the platform off macOS", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(NativeBackend.probe)
      expect(error._tag).toBe("NoAneError")
      expect(error.reason).toContain(`platform ${process.platform}`)
      expect(error.message).toContain("Ane.layerSimulator")
    }).pipe(Effect.when(() => process.platform !== "darwin")))

  const fakeRuntime = (answers: Record<string, unknown>, missingClass = false): NativeBackend.ObjcProbeRuntime => ({
    getClass: (name) => (missingClass ? null : name === "_ANEDeviceInfo" ? 1n : null),
    responds: (_cls, sel) => sel in answers,
    sendBool: (_c, sel) => answers[sel] as boolean,
    sendU32: (_c, sel) => answers[sel] as number,
    sendI64: (_c, sel) => answers[sel] as number,
    sendString: (_c, sel) => answers[sel] as string
  })

  it.effect("probes _ANEDeviceInfo in order, gating the best-effort selectors", () =>
    Effect.gen(function*() {
      const info = yield* NativeBackend.probeWith(fakeRuntime({
        hasANE: true, numANECores: 16, isVirtualMachine: false, aneArchitectureType: "h16", productName: "Mac",
        buildVersion: "25A1"
      }))
      expect(info).toEqual(DeviceInfo.make({
        hasAne: true, numCores: 16, architecture: "h16", product: "Mac", buildVersion: "25A1", isVm: false,
        numAnes: 0, subType: "", boardType: 0, internalBuild: false, backend: "hardware"
      }))
    }))

  it.effect("reports a machine without an engine or without the class as NoAneError", () =>
    Effect.gen(function*() {
      const none = yield* Effect.flip(NativeBackend.probeWith(fakeRuntime({ hasANE: false, productName: "VM" })))
      expect(none.reason).toContain("hasANE = NO")
      const missing = yield* Effect.flip(NativeBackend.probeWith(fakeRuntime({}, true)))
      expect(missing.reason).toContain("_ANEDeviceInfo")
    }))

  it.scoped("compiling through the hardware backend is a typed 'not implemented' failure", () =>
    Effect.gen(function*() {
      const backend = NativeBackend.makeBackend(DeviceInfo.make({
        hasAne: true, numCores: 16, architecture: "h16", product: "Mac", buildVersion: "", isVm: false,
        numAnes: 1, subType: "", boardType: 0, internalBuild: false, backend: "hardware"
      }))
      const error = yield* Effect.flip(backend.compile(program))
      expect(error._tag).toBe("CompileError")
      expect(Option.fromNullable(error._tag === "CompileError" ? error.hint : undefined).pipe(Option.getOrElse(() => ""))).toContain("not implemented")
    }))
})
