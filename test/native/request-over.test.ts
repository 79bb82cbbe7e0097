import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { koffi as loadKoffi } from "../../src/native/koffi.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { Backend, type BackendModel, type BackendSurface } from "../../src/services/Backend.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { doubleText, pattern } from "../services/programs.js"
import { attributeOf, checkAfterEach, expectClean, fakeLayer, loadFake, readOutput, readSurface, writeInput, writeSurface } from "./fake.js"

// The library's own koffi instance, so types and handles are shared with it.
const koffi = loadKoffi()

const fake = loadFake()
checkAfterEach(fake)
const layerWith = () => fakeLayer(fake)

/** `z = y + x` where `y = x + x`: three times its input, so it cannot be mistaken for the doubling model. */
const tripleText = (channels: number, width: number) => `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, ${channels}, 1, ${width}]> x) {
        tensor<fp16, [1, ${channels}, 1, ${width}]> y = add(x = x, y = x)[name = string("y")];
        tensor<fp16, [1, ${channels}, 1, ${width}]> z = add(x = y, y = x)[name = string("z")];
    } -> (z);
}
`

/** `z = a + b` over two fp16 inputs. */
const sumText = (channels: number, width: number) => `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, ${channels}, 1, ${width}]> a, tensor<fp16, [1, ${channels}, 1, ${width}]> b) {
        tensor<fp16, [1, ${channels}, 1, ${width}]> z = add(x = a, y = b)[name = string("z")];
    } -> (z);
}
`

const text = doubleText(4, 32)

/**
 * Makes the fake behave like the engine for several models: each is compiled on the simulator first, its layouts
 * become the fake's attributes for the native compile that follows, and every fake evaluation runs the simulator
 * model whose hex identifier the native model got, on the bytes of the surfaces the request carries.
 */
const engine = Effect.gen(function*() {
  const sim = yield* SimBackend.make({ rules: "warn", latency: "off" })
  const byHex = new Map<string, BackendModel>()
  const evals: Array<string> = []
  fake.setEval((hex, inputs, outputs) => {
    const m = byHex.get(hex)
    if (m === undefined) return 1
    evals.push(hex)
    m.inputs.forEach((l, i) => m.request.inputs[i]!.set(new Uint8Array(koffi.view(inputs[i]!, l.allocSize))))
    if (Exit.isFailure(Effect.runSyncExit(m.request.eval))) return 1
    m.outputs.forEach((l, i) => new Uint8Array(koffi.view(outputs[i]!, l.allocSize)).set(m.request.outputs[i]!))
    return 0
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      fake.setEval(undefined)
      fake.setAttributes(undefined)
      fake.reset()
    })
  )
  const compile = (source: string, inputSymbols?: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const backend = yield* Backend
      const simModel = yield* sim.compile(CompileOptions.mil({ text: source }))
      fake.setAttributes({
        inputs: simModel.inputs.map(attributeOf),
        outputs: simModel.outputs.map(attributeOf),
        ...(inputSymbols !== undefined ? { inputSymbols } : {})
      })
      const model = yield* backend.compile(CompileOptions.mil({ text: source })).pipe(
        // The loaded model keeps its own reference to the attributes.
        Effect.ensuring(Effect.sync(() => fake.setAttributes(undefined)))
      )
      byHex.set(model.id.slice(4), simModel)
      return model
    })
  return { compile, evals: () => evals.length, evalsOf: (model: BackendModel) => evals.filter((h) => `mil:${h}` === model.id).length }
})

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

/** Protocol lines: _ANE* messages (retain/release/respondsToSelector: aside), the fake's request lines, IOSurface creation and CF retains. */
const protocol = () =>
  fake.log()
    .filter((l) => (l.includes("_ANE") && !/ (retain|release|respondsToSelector:)$/.test(l)) || /^(IOSurfaceCreate|CFRetain IOSurface|CFRelease IOSurface|request in=)/.test(l))
    .map((l) => (l.startsWith("IOSurfaceCreate") ? "IOSurfaceCreate" : l))

const doubled = (xs: Float32Array) => Array.from(xs, (x) => 2 * x)

const MAP = "-_ANEClient mapIOSurfacesWithModel:request:cacheInference:error:"
const UNMAP = "-_ANEClient unmapIOSurfacesWithModel:request:"

describe("mapRequestOver on the hardware backend (fake runtime)", () => {
  it.scopedLive("computes into the caller's surfaces through eval, evalAsync and evalWithStats, in the spec's order", () =>
    Effect.gen(function*() {
      const { compile, evals } = yield* engine
      const backend = yield* Backend
      const liveBefore = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* compile(text)
        const [inL, outL] = [model.inputs[0]!, model.outputs[0]!]
        // Larger than needed: the request's view is the first allocSize bytes.
        const sIn = yield* backend.createSurface(inL.allocSize + 128)
        const sOut = yield* backend.createSurface(outL.allocSize)
        const handles = yield* backend.liveHandles
        fake.reset()
        yield* Effect.scoped(Effect.gen(function*() {
          const r = yield* model.mapRequestOver({ inputs: [sIn], outputs: [sOut] })
          expect(yield* backend.liveHandles).toBe(handles + 1)
          expect([r.inputs[0]!.length, r.outputs[0]!.length]).toEqual([inL.allocSize, outL.allocSize])
          // Zero-copy: the views are the caller's memory.
          expect(r.inputs[0]!.buffer).toBe(sIn.bytes.buffer)
          expect(r.outputs[0]!.buffer).toBe(sOut.bytes.buffer)
          expect([r.inputs[0]!.byteOffset, r.outputs[0]!.byteOffset]).toEqual([sIn.bytes.byteOffset, sOut.bytes.byteOffset])
          writeSurface(sIn, inL, pattern(128, 1))
          yield* r.eval
          expect(Array.from(readSurface(sOut, outL))).toEqual(doubled(pattern(128, 1)))
          // The model's own request saw none of it.
          expect(Array.from(readOutput(model.request, 0, outL)).every((x) => x === 0)).toBe(true)
          writeInput(r, 0, inL, pattern(128, 2))
          yield* r.evalAsync
          expect(Array.from(readSurface(sOut, outL))).toEqual(doubled(pattern(128, 2)))
          writeSurface(sIn, inL, pattern(128, 3))
          const stats = yield* r.evalWithStats
          expect(stats.source).toBe("hardware")
          expect(Array.from(readOutput(r, 0, outL))).toEqual(doubled(pattern(128, 3)))
          expect(evals()).toBe(3)
        }))
        expect(protocol()).toEqual([
          // The caller's surfaces: retained and wrapped, none created.
          "CFRetain IOSurface",
          "+_ANEIOSurfaceObject objectWithIOSurface:",
          "CFRetain IOSurface",
          "+_ANEIOSurfaceObject objectWithIOSurface:",
          "+_ANERequest requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:sharedEvents:transactionHandle:",
          "request in=0 out=0",
          "-_ANERequest transactionHandle",
          "-_ANERequest validate",
          MAP,
          "-_ANERequest validate",
          "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
          "-_ANERequest validate",
          "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
          "+_ANEPerformanceStats statsWithHardwareExecutionNS:",
          "-_ANERequest setPerfStats:",
          "-_ANERequest validate",
          "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
          "-_ANERequest perfStatsArray",
          "-_ANERequest perfStats",
          "-_ANEPerformanceStats hwExecutionTime",
          "-_ANEPerformanceStats perfCounterData",
          "-_ANEPerformanceStats pStatsRawData",
          "-_ANEPerformanceStats stringForPerfCounter:",
          "-_ANEPerformanceStats performanceCounters",
          // Scope close (§7.7): unmap, then the request's own references, the caller's surfaces last.
          UNMAP,
          "CFRelease IOSurface",
          "CFRelease IOSurface"
        ])
        // The caller's surfaces outlive the request and still hold the last result.
        expect(yield* backend.liveHandles).toBe(handles)
        expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([1, 1])
        expect(Array.from(readSurface(sOut, outL))).toEqual(doubled(pattern(128, 3)))
      }))
      expect(fake.live()).toBe(liveBefore)
      yield* expectClean(fake)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("carries the layouts' symbol indices and binds each surface to its own input", () =>
    Effect.gen(function*() {
      const { compile } = yield* engine
      const backend = yield* Backend
      // Symbols listed in the other order: input a is symbol 1, b is symbol 0.
      const model = yield* compile(sumText(4, 32), ["b", "a"])
      const [aL, bL] = [model.inputs[0]!, model.inputs[1]!]
      expect([aL.name, bL.name]).toEqual(["a", "b"])
      const [a, b, z] = [yield* backend.createSurface(aL.allocSize), yield* backend.createSurface(bL.allocSize), yield* backend.createSurface(model.outputs[0]!.allocSize)]
      fake.reset()
      const r = yield* model.mapRequestOver({ inputs: [a, b], outputs: [z] })
      expect(fake.log().filter((l) => l.startsWith("request "))).toEqual(["request in=1,0 out=0"])
      writeSurface(a, aL, pattern(128, 1))
      writeSurface(b, bL, pattern(128, 5).map((x) => x / 4))
      yield* r.eval
      const want = Array.from(pattern(128, 1), (x, i) => x + pattern(128, 5)[i]! / 4)
      expect(Array.from(readSurface(z, model.outputs[0]!))).toEqual(want)
    }).pipe(Effect.scoped, Effect.provide(layerWith())))

  it.scopedLive("two models share a surface: A's output surface is B's input, B sees A's result with no copy", () =>
    Effect.gen(function*() {
      const { compile, evalsOf } = yield* engine
      const backend = yield* Backend
      const liveBefore = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const a = yield* compile(text)
        const b = yield* compile(tripleText(4, 32))
        expect(a.id).not.toBe(b.id)
        const layout = a.inputs[0]!
        const [input, middle, output] = [
          yield* backend.createSurface(layout.allocSize),
          yield* backend.createSurface(Math.max(a.outputs[0]!.allocSize, b.inputs[0]!.allocSize)),
          yield* backend.createSurface(b.outputs[0]!.allocSize)
        ]
        const ra = yield* a.mapRequestOver({ inputs: [input], outputs: [middle] })
        const rb = yield* b.mapRequestOver({ inputs: [middle], outputs: [output] })
        expect(ra.outputs[0]!.buffer).toBe(rb.inputs[0]!.buffer)
        // The shared surface is held by its creator and by each request.
        expect(fake.surfaceRefs(middle.bytes)).toBe(1 + 2 * 2)
        writeSurface(input, layout, pattern(128, 7))
        yield* ra.eval
        expect(Array.from(readSurface(middle, a.outputs[0]!))).toEqual(doubled(pattern(128, 7)))
        yield* rb.evalAsync
        expect(Array.from(readSurface(output, b.outputs[0]!))).toEqual(Array.from(pattern(128, 7), (x) => 6 * x))
        expect([evalsOf(a), evalsOf(b)]).toEqual([1, 1])
        // Nothing was copied into the models' own requests.
        expect(Array.from(readOutput(b.request, 0, b.inputs[0]!, "input")).every((x) => x === 0)).toBe(true)
      }))
      expect(fake.live()).toBe(liveBefore)
      yield* expectClean(fake)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("every bad argument is a MapError naming the input or output, before any native call", () =>
    Effect.gen(function*() {
      const { compile } = yield* engine
      const backend = yield* Backend
      const other = yield* Effect.provide(Backend, layerWith())
      const model = yield* compile(text)
      const need = model.inputs[0]!.allocSize
      const good = yield* backend.createSurface(need)
      const good2 = yield* backend.createSurface(need)
      const small = yield* backend.createSurface(need - 2)
      const foreign = yield* other.createSurface(need)
      const plain: BackendSurface = { id: good.id, bytes: good.bytes }
      const handles = yield* backend.liveHandles
      const refs = fake.surfaceRefs(good.bytes)
      const cases: ReadonlyArray<readonly [string, { inputs: ReadonlyArray<BackendSurface>; outputs: ReadonlyArray<BackendSurface> }, string]> = [
        ["no inputs", { inputs: [], outputs: [good2] }, "the model has 1 input(s) but 0 input surface(s) were given"],
        ["two inputs", { inputs: [good, good], outputs: [good2] }, "the model has 1 input(s) but 2 input surface(s) were given"],
        ["two outputs", { inputs: [good], outputs: [good2, good2] }, "the model has 1 output(s) but 2 output surface(s) were given"],
        ["another backend's surface", { inputs: [good], outputs: [foreign] }, `output 0 (y): surface ${foreign.id} was not made by this hardware backend's createSurface`],
        ["a look-alike object", { inputs: [plain], outputs: [good2] }, `input 0 (x): surface ${good.id} was not made by this hardware backend's createSurface`],
        ["a small surface", { inputs: [small], outputs: [good2] }, `input 0 (x): surface ${small.id} has ${need - 2} bytes, the layout needs allocSize ${need}`],
        ["a small output", { inputs: [good], outputs: [small] }, `output 0 (y): surface ${small.id} has ${need - 2} bytes, the layout needs allocSize ${need}`]
      ]
      for (const [what, surfaces, hint] of cases) {
        fake.reset()
        const error = yield* failure(Effect.scoped(model.mapRequestOver(surfaces)))
        expect(error, what).toMatchObject({ _tag: "MapError", op: "map", model: model.id })
        expect(error._tag === "MapError" ? error.hint : "", what).toBe(hint)
        expect(fake.log(), what).toEqual([])
        expect(yield* backend.liveHandles, what).toBe(handles)
        expect(fake.surfaceRefs(good.bytes), what).toBe(refs)
      }
      // A surface whose scope has closed is refused too (its memory may be gone).
      const scope = yield* Scope.make()
      const gone = yield* Scope.extend(backend.createSurface(need), scope)
      yield* Scope.close(scope, Exit.void)
      fake.reset()
      const closed = yield* failure(Effect.scoped(model.mapRequestOver({ inputs: [gone], outputs: [good2] })))
      expect(closed).toMatchObject({ _tag: "ClosedError", op: "BackendModel.mapRequestOver", resource: `surface ${gone.id} (input 0 (x))` })
      expect(fake.log()).toEqual([])
      // The same surfaces map fine once the arguments are right.
      yield* Effect.scoped(model.mapRequestOver({ inputs: [good], outputs: [good2] }))
    }).pipe(Effect.scoped, Effect.provide(layerWith())))

  it.scopedLive("a native map failure releases the retains it took; the surfaces stay the caller's", () =>
    Effect.gen(function*() {
      const { compile } = yield* engine
      const backend = yield* Backend
      const model = yield* compile(text)
      const sIn = yield* backend.createSurface(model.inputs[0]!.allocSize)
      const sOut = yield* backend.createSurface(model.outputs[0]!.allocSize)
      const handles = yield* backend.liveHandles
      const live = fake.live()
      fake.reset()
      // Client YES, model YES, client NO, model NO: all four fail.
      fake.fail("map", 1, 4, 21)
      const error = yield* failure(Effect.scoped(model.mapRequestOver({ inputs: [sIn], outputs: [sOut] })))
      expect(error).toMatchObject({ _tag: "MapError", op: "BackendModel.mapRequestOver", domain: "com.apple.appleneuralengine", code: 21 })
      expect(fake.log().filter((l) => l.includes(" mapIOSurfaces"))).toHaveLength(4)
      expect(fake.log().filter((l) => /^CF(Retain|Release) IOSurface$/.test(l))).toEqual([
        "CFRetain IOSurface", "CFRetain IOSurface", "CFRelease IOSurface", "CFRelease IOSurface"
      ])
      expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([1, 1])
      expect(yield* backend.liveHandles).toBe(handles)
      expect(fake.live()).toBe(live)
    }).pipe(Effect.scoped, Effect.provide(layerWith())))

  for (const first of ["surfaces", "request"] as const) {
    it.scopedLive(`retains the caller's surfaces for the request's life (${first} scope closed first)`, () =>
      Effect.gen(function*() {
        const { compile } = yield* engine
        const backend = yield* Backend
        const liveBefore = fake.live()
        const model = yield* compile(text)
        const [inL, outL] = [model.inputs[0]!, model.outputs[0]!]
        const handles = yield* backend.liveHandles
        const surfaceScope = yield* Scope.make()
        const requestScope = yield* Scope.make()
        const sIn = yield* Scope.extend(backend.createSurface(inL.allocSize), surfaceScope)
        const sOut = yield* Scope.extend(backend.createSurface(outL.allocSize), surfaceScope)
        expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([1, 1])
        const r = yield* Scope.extend(model.mapRequestOver({ inputs: [sIn], outputs: [sOut] }), requestScope)
        // The creator's reference, the _ANEIOSurfaceObject's and the request's own CFRetain.
        expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([3, 3])
        expect(yield* backend.liveHandles).toBe(handles + 3)
        if (first === "surfaces") {
          yield* Scope.close(surfaceScope, Exit.void)
          // Still alive for the engine: the request holds its own references.
          expect([fake.surfaceRefs(r.inputs[0]!), fake.surfaceRefs(r.outputs[0]!)]).toEqual([2, 2])
          expect(yield* backend.liveHandles).toBe(handles + 1)
          writeInput(r, 0, inL, pattern(128, 4))
          yield* r.eval
          expect(Array.from(readOutput(r, 0, outL))).toEqual(doubled(pattern(128, 4)))
          const before = fake.live()
          fake.reset()
          yield* Scope.close(requestScope, Exit.void)
          expect(fake.log().filter((l) => l === UNMAP || l.startsWith("CFRelease"))).toEqual([UNMAP, "CFRelease IOSurface", "CFRelease IOSurface"])
          // The last references went with the request: both surfaces are freed now.
          expect([fake.surfaceRefs(r.inputs[0]!), fake.surfaceRefs(r.outputs[0]!)]).toEqual([0, 0])
          expect(fake.live()).toBeLessThan(before)
        } else {
          writeSurface(sIn, inL, pattern(128, 6))
          yield* r.eval
          yield* Scope.close(requestScope, Exit.void)
          expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([1, 1])
          expect(yield* backend.liveHandles).toBe(handles + 2)
          expect(Array.from(readSurface(sOut, outL))).toEqual(doubled(pattern(128, 6)))
          expect((yield* failure(r.eval))._tag).toBe("ClosedError")
          const held = sOut.bytes
          yield* Scope.close(surfaceScope, Exit.void)
          expect(fake.surfaceRefs(held)).toBe(0)
        }
        expect(yield* backend.liveHandles).toBe(handles)
        return liveBefore
      }).pipe(
        Effect.scoped,
        Effect.flatMap((liveBefore) =>
          Effect.gen(function*() {
            expect(fake.live()).toBe(liveBefore)
            yield* expectClean(fake)
          })
        ),
        Effect.provide(layerWith())
      ))
  }

  it.scopedLive("after the model's scope closes: ClosedError for mapRequestOver and for the requests it mapped", () =>
    Effect.gen(function*() {
      const { compile } = yield* engine
      const backend = yield* Backend
      const liveBefore = fake.live()
      const modelScope = yield* Scope.make()
      const model = yield* Scope.extend(compile(text), modelScope)
      const sIn = yield* backend.createSurface(model.inputs[0]!.allocSize)
      const sOut = yield* backend.createSurface(model.outputs[0]!.allocSize)
      const r = yield* Scope.extend(model.mapRequestOver({ inputs: [sIn], outputs: [sOut] }), modelScope)
      fake.reset()
      yield* Scope.close(modelScope, Exit.void)
      // Closing the scope unmapped ours (through the client, giving back its references), then request 0 (mapped
      // through the in-memory model, §4.2 step 15, and freeing its own surfaces).
      const MODEL_UNMAP = "-_ANEInMemoryModel unmapIOSurfacesWithRequest:"
      expect(fake.log().filter((l) => l === UNMAP || l === MODEL_UNMAP || l.startsWith("CFRelease"))).toEqual([
        UNMAP, "CFRelease IOSurface", "CFRelease IOSurface", MODEL_UNMAP, "CFRelease IOSurface", "CFRelease IOSurface"
      ])
      expect([fake.surfaceRefs(sIn.bytes), fake.surfaceRefs(sOut.bytes)]).toEqual([1, 1])
      fake.reset()
      const again = yield* failure(Effect.scoped(model.mapRequestOver({ inputs: [sIn], outputs: [sOut] })))
      expect(again).toMatchObject({ _tag: "ClosedError", op: "BackendModel.mapRequestOver", resource: `model ${model.id}` })
      for (const e of [r.eval, r.evalAsync, r.evalWithStats] as const) {
        expect((yield* failure(e))._tag).toBe("ClosedError")
      }
      expect(fake.log()).toEqual([])
      expect(yield* backend.liveHandles).toBe(2)
      return liveBefore
    }).pipe(
      Effect.scoped,
      Effect.flatMap((liveBefore) =>
        Effect.gen(function*() {
          expect(fake.live()).toBe(liveBefore)
          yield* expectClean(fake)
        })
      ),
      Effect.provide(layerWith())
    ))
})
