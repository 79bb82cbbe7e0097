import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { tmpdir } from "node:os"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import { Backend, type BackendModel } from "../../src/services/Backend.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { SharedEventEvalOptions } from "../../src/schema/SharedEventEvalOptions.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { doubleText, pattern } from "../services/programs.js"
import { attributeOf, type AttributeTensor, checkAfterEach, expectClean, fakeLayer, loadFake, readOutput, writeInput } from "./fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const fake = loadFake()
checkAfterEach(fake)

const layerWith = (options: NativeBackend.NativeOptions = {}) => fakeLayer(fake, options)



/**
 * Makes the fake behave like the engine for `text`: the simulator compiles it, its layouts become the fake's
 * modelAttributes, and every fake evaluation runs the simulator on the surfaces' bytes.
 */
const engineFor = (text: string) =>
  Effect.gen(function*() {
    const sim = yield* SimBackend.make({ rules: "warn", latency: "off" })
    const simModel = yield* sim.compile(CompileOptions.mil({ text }))
    fake.setAttributes({ inputs: simModel.inputs.map(attributeOf), outputs: simModel.outputs.map(attributeOf) })
    let evals = 0
    fake.setEval((_hex, inputs, outputs) => {
      evals++
      simModel.inputs.forEach((l, i) => simModel.request.inputs[i]!.set(new Uint8Array(koffi.view(inputs[i]!, l.allocSize))))
      const exit = Effect.runSyncExit(simModel.request.eval)
      if (Exit.isFailure(exit)) return 1
      simModel.outputs.forEach((l, i) => new Uint8Array(koffi.view(outputs[i]!, l.allocSize)).set(simModel.request.outputs[i]!))
      return 0
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => {
      fake.setEval(undefined)
      fake.setAttributes(undefined)
    }))
    return { simModel, evals: () => evals }
  })

/** Protocol lines of the fake's log: _ANE* messages (retain/release aside) and IOSurfaceCreate. */
const protocol = () =>
  fake.log()
    .filter((l) => (l.includes("_ANE") && !/ (retain|release)$/.test(l)) || l.startsWith("IOSurfaceCreate"))
    .map((l) => (l.startsWith("IOSurfaceCreate") ? "IOSurfaceCreate" : l))

/**
 * The failure of `effect`; an unexpected success dies with a short message instead of failing the test with the
 * success value (a model whose views point at freed native memory must never reach the test reporter).
 */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

/** Waits (polling) until the fake has logged `line`: the native call has started on its worker thread. */
const untilLogged = (line: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !fake.log().includes(line); i++) yield* Effect.sleep("2 millis")
    expect(fake.log()).toContain(line)
  })

const text = doubleText(4, 32)
const options = CompileOptions.mil({ text })

const clean = () => expectClean(fake)

/** Where the fake's in-memory compiler reads a model from: its `-localModelPath`, inside NSTemporaryDirectory(). */
const localDir = (hex: string) => join(fake.temporaryDirectory(), "ane-local", hex)

describe("NativeBackend over the fake runtime", () => {
  const packageDir = () =>
    Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-pkg-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )

  it.scopedLive("probes _ANEDeviceInfo, gating the selectors the class does not answer", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const info = yield* backend.probe
      expect(info.backend).toBe("hardware")
      expect([info.hasAne, info.numCores, info.architecture, info.product, info.numAnes, info.boardType]).toEqual([
        true, 16, "h16", "FakeMac", 1, 208
      ])
      expect(info.subType).toBe("")
      expect(backend.kind).toBe("hardware")
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("compile → write → eval → read → evalAsync → close follows the spec's call order and frees everything", () =>
    Effect.gen(function*() {
      const { evals } = yield* engineFor(text)
      const backend = yield* Backend
      const liveBefore = fake.live()
      const orphansBefore = fake.orphans()
      fake.reset()
      const input = pattern(4 * 32, 3)
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        expect(model.id).toMatch(/^mil:[0-9a-f]{16}$/)
        expect(model.capabilities).toEqual({ sharedEvents: "package-only", asyncEval: true })
        const [inLayout, outLayout] = [model.inputs[0]!, model.outputs[0]!]
        expect([inLayout.channels, inLayout.height, inLayout.width, inLayout.elemSize]).toEqual([4, 1, 32, 2])
        expect(model.request.inputs[0]!.length).toBe(inLayout.allocSize)
        expect(existsSync(join(localDir(model.id.slice(4)), "model.mil"))).toBe(true)
        // 1 model + 1 request + 2 surfaces.
        expect(yield* backend.liveHandles).toBe(4)
        writeInput(model.request, 0, inLayout, input)
        yield* model.request.eval
        expect(Array.from(readOutput(model.request, 0, outLayout))).toEqual(Array.from(input, (x) => 2 * x))
        writeInput(model.request, 0, inLayout, input.map((x) => x + 1))
        yield* model.request.evalAsync
        expect(Array.from(readOutput(model.request, 0, outLayout))).toEqual(Array.from(input, (x) => 2 * (x + 1)))
        expect(evals()).toBe(2)
      }))
      expect(protocol()).toEqual([
        "+_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:",
        "+_ANEInMemoryModel inMemoryModelWithDescriptor:",
        "-_ANEInMemoryModel hexStringIdentifier",
        // The folder the framework reads is the model's own localModelPath (§4.3), asked for first.
        "-_ANEInMemoryModel respondsToSelector:",
        "-_ANEInMemoryModel localModelPath",
        "-_ANEInMemoryModel compileWithQoS:options:error:",
        "-_ANEInMemoryModel loadWithQoS:options:error:",
        "-_ANEInMemoryModel model",
        "-_ANEInMemoryModel respondsToSelector:",
        "-_ANEInMemoryModel sharedConnection",
        "-_ANEClient respondsToSelector:",
        "-_ANEClient respondsToSelector:",
        "-_ANEClient respondsToSelector:",
        "-_ANEModel modelAttributes",
        "IOSurfaceCreate",
        "+_ANEIOSurfaceObject objectWithIOSurface:",
        "IOSurfaceCreate",
        "+_ANEIOSurfaceObject objectWithIOSurface:",
        "+_ANERequest respondsToSelector:",
        "+_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
        "-_ANERequest respondsToSelector:",
        "-_ANERequest respondsToSelector:",
        "-_ANERequest transactionHandle",
        "-_ANERequest respondsToSelector:",
        // Request 0 maps through the in-memory model, as the Go package maps it (§4.2 step 15).
        "-_ANEInMemoryModel mapIOSurfacesWithRequest:cacheInference:error:",
        "-_ANERequest validate",
        "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
        "-_ANERequest validate",
        "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
        "-_ANEInMemoryModel unmapIOSurfacesWithRequest:",
        "-_ANEInMemoryModel unloadWithQoS:error:"
      ])
      expect(fake.live()).toBe(liveBefore)
      expect(fake.orphans()).toBe(orphansBefore)
      yield* clean()
      expect(yield* backend.compileCount).toBe(1)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("without a client, maps, evaluates and unmaps through the in-memory model", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      yield* Effect.acquireRelease(Effect.sync(() => fake.setClientPath(false)), () => Effect.sync(() => fake.setClientPath(true)))
      const backend = yield* Backend
      const before = fake.live()
      fake.reset()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        writeInput(model.request, 0, model.inputs[0]!, pattern(128, 4))
        yield* model.request.eval
        yield* model.request.evalAsync
        expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 4), (x) => 2 * x))
      }))
      expect(protocol().filter((l) => /map|valuate|unload|sharedConnection|respondsToSelector/.test(l) && !l.includes("_ANERequest"))).toEqual([
        "-_ANEInMemoryModel respondsToSelector:",
        "-_ANEInMemoryModel respondsToSelector:",
        "-_ANEInMemoryModel mapIOSurfacesWithRequest:cacheInference:error:",
        "-_ANEInMemoryModel evaluateWithQoS:options:request:error:",
        "-_ANEInMemoryModel evaluateWithQoS:options:request:error:",
        "-_ANEInMemoryModel unmapIOSurfacesWithRequest:",
        "-_ANEInMemoryModel unloadWithQoS:error:"
      ])
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("passes weights as a dictionary of {offset, data} and writes them beside model.mil", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      const before = fake.live()
      const weights = [
        { path: "@model_path/weights/weight.bin", bytes: new Uint8Array([1, 2, 3]) },
        { path: "@model_path/weights/extra/w2.bin", bytes: new Uint8Array([4]) }
      ]
      let dir = ""
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.mil({ text, weights }))
        dir = join(localDir(model.id.slice(4)))
        expect(existsSync(join(dir, "weights", "weight.bin"))).toBe(true)
        expect(existsSync(join(dir, "weights", "extra", "w2.bin"))).toBe(true)
      }))
      // The directory goes with the model; the weight NSData objects are freed with it.
      expect(existsSync(dir)).toBe(false)
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("re-sets perfStatsMask after compile and after load, on the wrapper and the inner model", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      fake.reset()
      yield* Effect.scoped(backend.compile(CompileOptions.mil({ text, perfStatsMask: 3 })))
      const masks = fake.log().filter((l) => l.endsWith("setPerfStatsMask:"))
      expect(masks).toEqual([
        "-_ANEInMemoryModel setPerfStatsMask:",
        "-_ANEInMemoryModel setPerfStatsMask:",
        "-_ANEInMemoryModel setPerfStatsMask:",
        "-_ANEModel setPerfStatsMask:"
      ])
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("retries a failed load once; request 0 maps through the model, extra requests client first", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      fake.reset()
      fake.fail("load", 1, 1, 5)
      fake.fail("map", 1, 1, 13)
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const log = protocol()
        expect(log.filter((l) => l.endsWith("loadWithQoS:options:error:"))).toHaveLength(2)
        // Request 0: the in-memory model with cacheInference YES (failed), then NO (§4.2 step 15).
        expect(log.filter((l) => l.includes(" mapIOSurfaces"))).toEqual([
          "-_ANEInMemoryModel mapIOSurfacesWithRequest:cacheInference:error:",
          "-_ANEInMemoryModel mapIOSurfacesWithRequest:cacheInference:error:"
        ])
        fake.reset()
        fake.fail("map", 1, 1, 13)
        yield* Effect.scoped(model.mapRequest)
        // An extra request: the client first (errata D11), then the model; unmapped where it was mapped.
        expect(protocol().filter((l) => l.includes("mapIOSurfaces"))).toEqual([
          "-_ANEClient mapIOSurfacesWithModel:request:cacheInference:error:",
          "-_ANEInMemoryModel mapIOSurfacesWithRequest:cacheInference:error:",
          "-_ANEInMemoryModel unmapIOSurfacesWithRequest:"
        ])
      }))
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  const failures: ReadonlyArray<{
    readonly stage: "descriptor" | "compile" | "load" | "surface" | "request" | "map"
    readonly count: number
    readonly tag: string
    readonly native: boolean
  }> = [
    { stage: "descriptor", count: 1, tag: "CompileError", native: false },
    { stage: "compile", count: 1, tag: "CompileError", native: true },
    { stage: "load", count: 2, tag: "ModelLoadError", native: true },
    { stage: "surface", count: 1, tag: "MapError", native: false },
    // The 9-argument factory, then its 7-argument fallback.
    { stage: "request", count: 2, tag: "MapError", native: false },
    // Request 0 maps through the in-memory model: YES, then NO.
    { stage: "map", count: 2, tag: "MapError", native: true }
  ]
  for (const f of failures) {
    it.scopedLive(`a ${f.stage} failure is a ${f.tag} and releases everything acquired`, () =>
      Effect.gen(function*() {
        yield* engineFor(text)
        const backend = yield* Backend
        const before = fake.live()
        fake.reset()
        fake.fail(f.stage, 1, f.count, 42)
        const error = yield* failure(Effect.scoped(backend.compile(options)))
        expect(error._tag).toBe(f.tag)
        if (f.native && "domain" in error) {
          expect([error.domain, error.code]).toEqual(["com.apple.appleneuralengine", 42])
          expect(error.message).toContain("injected")
        }
        expect(fake.live()).toBe(before)
        expect(fake.log().some((l) => l.endsWith("unloadWithQoS:error:"))).toBe(f.stage === "surface" || f.stage === "request" || f.stage === "map")
        yield* clean()
        expect(yield* backend.compileCount).toBe(0)
      }).pipe(Effect.provide(layerWith())))
  }

  for (const f of [{ stage: "compile", count: 1, tag: "CompileError" }, { stage: "load", count: 2, tag: "ModelLoadError" }, { stage: "map", count: 2, tag: "MapError" }] as const) {
    it.scopedLive(`a package ${f.stage} failure is a ${f.tag} and releases everything acquired`, () =>
      Effect.gen(function*() {
        yield* engineFor(text)
        const path = yield* packageDir()
        const backend = yield* Backend
        const before = fake.live()
        fake.reset()
        fake.fail(f.stage, 1, f.count, 7)
        const error = yield* failure(Effect.scoped(backend.compile(CompileOptions.package({ path }))))
        expect(error._tag).toBe(f.tag)
        if ("code" in error) expect(error.code).toBe(7)
        expect(fake.log().some((l) => l.endsWith("unloadModel:options:qos:error:"))).toBe(f.stage === "map")
        expect(fake.live()).toBe(before)
        yield* clean()
      }).pipe(Effect.provide(layerWith())))
  }

  it.scopedLive("a failed evaluation is an EvalError with the NSError's domain and code, sync and async", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      const before = fake.live()
      const orphansBefore = fake.orphans()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        fake.reset()
        // Direct then fallback evaluation, sync and async: four failing calls.
        fake.fail("eval", 1, 4, 0x1d)
        const sync = yield* failure(model.request.eval)
        const async = yield* failure(model.request.evalAsync)
        for (const e of [sync, async]) {
          expect(e._tag).toBe("EvalError")
          if (e._tag === "EvalError") expect([e.domain, e.code]).toEqual(["com.apple.appleneuralengine", 0x1d])
        }
        // The model still works after a failed evaluation.
        yield* model.request.eval
      }))
      // The eval thread read each NSError inside its own pool and let it go: nothing leaked on any thread.
      expect(fake.orphans() - orphansBefore).toBe(0)
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("an interrupted evalAsync is abandoned; closing waits for the native call before freeing the surfaces", () =>
    Effect.gen(function*() {
      const { evals } = yield* engineFor(text)
      const backend = yield* Backend
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const fiber = yield* Effect.fork(model.request.evalAsync)
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
      }))
      // The evaluation still ran to completion (its callback fired) before the model was released.
      expect(evals()).toBe(1)
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("maps extra requests with their own surfaces and unmaps them with their scope", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const layout = model.inputs[0]!
        yield* Effect.scoped(Effect.gen(function*() {
          const extra = yield* model.mapRequest
          expect(yield* backend.liveHandles).toBe(7)
          expect(extra.inputs[0]!.buffer).not.toBe(model.request.inputs[0]!.buffer)
          writeInput(extra, 0, layout, pattern(128, 9))
          writeInput(model.request, 0, layout, pattern(128, 1))
          yield* extra.eval
          expect(Array.from(readOutput(extra, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 9), (x) => 2 * x))
        }))
        expect(yield* backend.liveHandles).toBe(4)
      }))
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("use after close is a ClosedError; shared events are refused for MIL models", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      const scope = yield* Scope.make()
      const model: BackendModel = yield* Scope.extend(backend.compile(options), scope)
      const refused = yield* failure(model.request.evalWithSharedEvents({}))
      expect(refused._tag).toBe("SharedEventRequiresPackageError")
      yield* Scope.close(scope, Exit.void)
      const uses: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [
        model.request.eval, model.request.evalAsync, Effect.scoped(model.mapRequest)
      ]
      for (const e of uses) {
        const error = yield* failure(e)
        expect(error._tag).toBe("ClosedError")
      }
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("refuses compiles past the budget with CompileBudgetExhaustedError", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const backend = yield* Backend
      expect(backend.compileLimit).toBe(1)
      yield* Effect.scoped(backend.compile(options))
      const error = yield* failure(Effect.scoped(backend.compile(options)))
      expect(error._tag).toBe("CompileBudgetExhaustedError")
      expect(yield* backend.compileCount).toBe(1)
    }).pipe(Effect.provide(layerWith({ compileLimit: 1 }))))

  it.scopedLive("bad options fail typed before any native call; a missing package is a CompileError", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const before = fake.live()
      fake.reset()
      const bad = yield* failure(Effect.scoped(backend.compile(CompileOptions.mil({ text, qos: 99 }))))
      expect(bad._tag).toBe("InvalidArgumentError")
      expect(protocol()).toEqual([])
      const pkg = yield* failure(Effect.scoped(backend.compile(CompileOptions.package({ path: "/nonexistent/x.mlmodelc" }))))
      expect(pkg._tag).toBe("CompileError")
      expect(pkg.message).toContain("failed to create model from /nonexistent/x.mlmodelc")
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("compiles a package through _ANEClient and evaluates it with nil options", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const path = yield* packageDir()
      const backend = yield* Backend
      const before = fake.live()
      fake.reset()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.package({ path }))
        expect([model.id, model.kind]).toEqual([path, "package"])
        writeInput(model.request, 0, model.inputs[0]!, pattern(128, 5))
        yield* model.request.eval
        expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 5), (x) => 2 * x))
      }))
      expect(protocol()).toEqual([
        "+_ANEModel modelAtURL:key:",
        "+_ANEClient respondsToSelector:",
        "+_ANEClient sharedConnection",
        "-_ANEClient respondsToSelector:",
        "-_ANEClient compileModel:options:qos:error:",
        "-_ANEClient loadModel:options:qos:error:",
        "-_ANEModel modelAttributes",
        "IOSurfaceCreate",
        "+_ANEIOSurfaceObject objectWithIOSurface:",
        "IOSurfaceCreate",
        "+_ANEIOSurfaceObject objectWithIOSurface:",
        "+_ANERequest respondsToSelector:",
        "+_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
        "-_ANERequest respondsToSelector:",
        "-_ANERequest respondsToSelector:",
        "-_ANERequest transactionHandle",
        "-_ANERequest respondsToSelector:",
        "-_ANEClient mapIOSurfacesWithModel:request:cacheInference:error:",
        "-_ANERequest validate",
        "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
        "-_ANEClient unmapIOSurfacesWithModel:request:",
        "-_ANEClient unloadModel:options:qos:error:"
      ])
      expect(fake.log().slice(0, 5)).toEqual([
        "+NSURL alloc", "+NSString stringWithUTF8String:", "-NSURL initFileURLWithPath:", "+NSString alloc", "+NSString stringWithUTF8String:"
      ])
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("package shared-event evaluation signals and waits through IOSurfaceSharedEvent, then skips unmap/unload", () =>
    Effect.gen(function*() {
      yield* engineFor(text)
      const path = yield* packageDir()
      const backend = yield* Backend
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const event = yield* backend.createSharedEvent
        const model = yield* backend.compile(CompileOptions.package({ path }))
        fake.reset()
        writeInput(model.request, 0, model.inputs[0]!, pattern(128, 2))
        yield* model.request.evalWithSharedEvents({
          signal: { event, value: 5n },
          options: new SharedEventEvalOptions({ disableIoFencesUseSharedEvents: true })
        })
        expect(yield* event.signaledValue).toBe(5n)
        expect(Array.from(readOutput(model.request, 0, model.outputs[0]!))).toEqual(Array.from(pattern(128, 2), (x) => 2 * x))
        // The option key is the framework's exported constant, not the literal symbol name.
        expect(fake.log()).toContain("options fake.DisableIOFencesUseSharedEvents")
        // A wait event blocks the evaluation (on a worker thread) until the CPU signals.
        const waiting = yield* Effect.fork(model.request.evalWithSharedEvents({ wait: { event, value: 7n }, signal: { event, value: 8n } }))
        yield* untilLogged("-_ANEClient evaluateWithModel:options:request:qos:error:")
        yield* Effect.sleep("20 millis")
        expect(waiting.unsafePoll()).toBeNull()
        yield* event.signal(7n)
        yield* waiting.await.pipe(Effect.flatMap((exit) => exit))
        expect(yield* event.signaledValue).toBe(8n)
        const wrong = yield* failure(model.request.evalWithSharedEvents({ signal: { event: { ...event }, value: 1n } }))
        expect(wrong._tag).toBe("EvalError")
        fake.reset()
      }))
      // After a shared-event evaluation the package model is neither unmapped, unloaded nor released, and neither
      // are its request 0 and the two shared-event requests (the Go package keeps them: releasing them crashed).
      expect(protocol().filter((l) => /unmap|unload/.test(l))).toEqual([])
      expect(NativeBackend.nativeStats(backend)?.keptAfterSharedEvents).toBe(4)
      expect(fake.live()).toBeGreaterThan(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("standalone surfaces are zero-copy, sized as asked, and freed with their scope", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const s = yield* backend.createSurface(100)
        expect(s.bytes.length).toBe(100)
        s.bytes[99] = 7
        expect(s.bytes[99]).toBe(7)
        expect(yield* backend.liveHandles).toBe(1)
      }))
      expect(fake.live()).toBe(before)
      const bad = yield* failure(Effect.scoped(backend.createSurface(0)))
      expect(bad._tag).toBe("InvalidArgumentError")
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("shared events signal from the CPU, wait off the JS thread, time out, and close", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const before = fake.live()
      fake.reset()
      const scope = yield* Scope.make()
      const event = yield* Scope.extend(backend.createSharedEvent, scope)
      expect(event.port).toBeGreaterThan(0)
      expect(yield* event.signaledValue).toBe(0n)
      // A waiter blocks a worker thread; the JS thread stays free to signal it.
      const waiter = yield* Effect.fork(event.wait(3n, 5_000))
      yield* untilLogged("-IOSurfaceSharedEvent waitUntilSignaledValue:timeoutMS:")
      yield* event.signal(3n)
      expect(yield* waiter.await.pipe(Effect.flatMap((exit) => exit))).toBe(true)
      expect(yield* event.signaledValue).toBe(3n)
      expect(yield* event.wait(9n, 10)).toBe(false)
      expect(yield* backend.liveHandles).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect((yield* failure(event.signal(4n)))._tag).toBe("ClosedError")
      expect(fake.live()).toBe(before)
      // Waits run in short slices (how many depends on timing): they are checked apart from the rest.
      const WAIT = "-IOSurfaceSharedEvent waitUntilSignaledValue:timeoutMS:"
      const lines = fake.log().filter((l) => l.startsWith("+IOSurfaceSharedEvent") || l.startsWith("-IOSurfaceSharedEvent"))
      expect(lines.filter((l) => l === WAIT).length).toBeGreaterThanOrEqual(2)
      expect(lines.filter((l) => l !== WAIT)).toEqual([
        "+IOSurfaceSharedEvent respondsToSelector:",
        "+IOSurfaceSharedEvent new",
        "-IOSurfaceSharedEvent respondsToSelector:",
        "-IOSurfaceSharedEvent respondsToSelector:",
        "-IOSurfaceSharedEvent respondsToSelector:",
        "-IOSurfaceSharedEvent respondsToSelector:",
        "-IOSurfaceSharedEvent eventPort",
        "-IOSurfaceSharedEvent signaledValue",
        "-IOSurfaceSharedEvent retain",
        "-IOSurfaceSharedEvent setSignaledValue:",
        "-IOSurfaceSharedEvent release",
        "-IOSurfaceSharedEvent signaledValue",
        "-IOSurfaceSharedEvent retain",
        "-IOSurfaceSharedEvent release",
        "-IOSurfaceSharedEvent release"
      ])
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("layer fails with NoAneError off macOS; layerWith names a library that will not load", () =>
    Effect.gen(function*() {
      const missing = "/nonexistent/libobjc.so"
      const error = yield* failure(Layer.build(NativeBackend.layerWith({
        paths: { objc: missing, foundation: missing, coreFoundation: missing, ioSurface: missing, ane: missing }
      })))
      expect(error._tag).toBe("NoAneError")
      expect(error.reason).toContain("would not load")
      if (process.platform !== "darwin") {
        const off = yield* failure(Layer.build(NativeBackend.layer))
        expect(off.reason).toContain(`platform ${process.platform}`)
      }
    }).pipe(Effect.scoped))
})

describe("layouts from modelAttributes", () => {
  const entry = (over: Partial<AttributeTensor> = {}): AttributeTensor => ({
    Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name: "x", ...over
  })
  const withAttributes = (inputs: ReadonlyArray<AttributeTensor>, outputs: ReadonlyArray<AttributeTensor>) =>
    Effect.acquireRelease(
      Effect.sync(() => fake.setAttributes({ inputs, outputs })),
      () => Effect.sync(() => fake.setAttributes(undefined))
    )

  it.scopedLive("takes padded strides verbatim and resolves symbol indices", () =>
    Effect.gen(function*() {
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          fake.setAttributes({
            inputs: [entry({ Name: "a", RowStride: 128, PlaneStride: 384, Height: 2 }), entry({ Name: "b", Type: "Float32", Width: 16, Symbol: "b_sym" })],
            outputs: [entry({ Name: "y" })],
            // Symbol arrays in another order than the live lists; "a" repeats, so its last position wins.
            inputSymbols: ["a", "b_sym", "a"],
            outputSymbols: ["z", "y"]
          })
        ),
        () => Effect.sync(() => fake.setAttributes(undefined))
      )
      const backend = yield* Backend
      fake.reset()
      const model = yield* backend.compile(options)
      expect(fake.log().filter((l) => l.startsWith("request "))).toEqual(["request in=2,1 out=1"])
      const [a, b] = model.inputs
      expect([a!.rowStride, a!.planeStride, a!.height, a!.allocSize, a!.name]).toEqual([128, 384, 2, 4 * 384, "a"])
      expect([b!.elemSize, b!.width, b!.rowStride]).toEqual([4, 16, 64])
      expect(model.request.inputs.map((v) => v.length)).toEqual([4 * 384, 4 * 64])
    }).pipe(Effect.scoped, Effect.provide(layerWith())))

  it.scopedLive("an unaligned RowStride is an UnsupportedLayoutError naming the tensor, and nothing is left behind", () =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const before = fake.live()
      fake.reset()
      const error = yield* failure(
        Effect.scoped(Effect.zipRight(withAttributes([entry()], [entry({ Name: "y", RowStride: 96, PlaneStride: 96 })]), backend.compile(options)))
      )
      expect(error._tag).toBe("UnsupportedLayoutError")
      if (error._tag === "UnsupportedLayoutError") {
        expect(error.tensor).toBe("output[0] (y)")
        expect(error.reason).toContain("RowStride 96 is not 64-byte aligned")
      }
      expect(fake.log().some((l) => l.endsWith("unloadWithQoS:error:"))).toBe(true)
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("missing attributes are a CompileError saying so", () =>
    Effect.gen(function*() {
      fake.setAttributes(undefined)
      const backend = yield* Backend
      const error = yield* failure(Effect.scoped(backend.compile(options)))
      expect(error._tag).toBe("CompileError")
      expect(error.message).toContain("model attributes are nil")
      yield* clean()
    }).pipe(Effect.provide(layerWith())))
})
