/** PipelinedIO and prepareChain on the hardware backend, against the fake runtime: the §10.3–10.4 objects and calls. */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import * as Ane from "../../src/services/Ane.js"
import * as PipelinedIO from "../../src/services/PipelinedIO.js"
import * as SimBackend from "../../src/sim/SimBackend.js"
import { doubleText } from "../services/programs.js"
import { attributeOf, checkAfterEach, fakeLayer, loadFake } from "./fake.js"
import { loadMetalFake } from "./metal-fake.js"

const fake = loadFake()
const metal = loadMetalFake()
checkAfterEach(fake)

const text = doubleText(4, 32)
const aneLayer = () => Ane.layerBackend().pipe(Layer.provide(fakeLayer(fake)), Layer.orDie)

const setup = Effect.gen(function*() {
  const sim = yield* SimBackend.make({ rules: "warn", latency: "off" })
  const simModel = yield* sim.compile(CompileOptions.mil({ text }))
  fake.setAttributes({ inputs: simModel.inputs.map(attributeOf), outputs: simModel.outputs.map(attributeOf) })
  metal.reset()
  yield* Effect.addFinalizer(() => Effect.sync(() => {
    fake.setAttributes(undefined)
    metal.reset()
  }))
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-pio-"))),
    (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
  )
  return { dir }
})

/** The fake's record of the §10.3–10.4 calls, without the respondsToSelector: lines. */
const calls = () => metal.log().filter((l) => !l.includes("respondsToSelector:") && !l.startsWith("-_ANEClient"))

describe("PipelinedIO on the hardware backend (fake runtime)", () => {
  it.scopedLive("sends buffersReady, enqueueSets and prepareChaining with what the spec says, and leaves nothing behind", () =>
    Effect.gen(function*() {
      const { dir } = yield* setup
      const ane = yield* Ane.Ane
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* ane.compile(CompileOptions.package({ path: dir }))
        const io = yield* PipelinedIO.make(model)
        yield* io.notifyInputsReady()
        yield* io.enqueueOutputSet(0, 1, 5n)
        yield* io.setOpenLoop(true)
        yield* io.enqueueOutputSet(0, 2, 6n)
        yield* PipelinedIO.prepareChain(model, [{ loopbackInputIndex: 0, loopbackOutputIndex: 0, enqueueDelay: 3n }])
        expect(calls()).toEqual([
          "+_ANEInputBuffersReady inputBuffersWithProcedureIndex:inputBufferInfoIndex:inputFreeValue:executionDelay:",
          "buffersReady procedure=0 info=0 free=0 delay=0 qos=21",
          "+_ANEOutputSetEnqueue alloc",
          "-_ANEOutputSetEnqueue initOutputSetWithProcedureIndex:setIndex:signalValue:signalNotRequired:isOpenLoop:",
          "enqueue procedure=0 set=1 value=5 notRequired=0 openLoop=0 qos=21",
          "-_ANEOutputSetEnqueue release",
          "+_ANEOutputSetEnqueue alloc",
          "-_ANEOutputSetEnqueue initOutputSetWithProcedureIndex:setIndex:signalValue:signalNotRequired:isOpenLoop:",
          "enqueue procedure=0 set=2 value=6 notRequired=0 openLoop=1 qos=21",
          "-_ANEOutputSetEnqueue release",
          "+_ANEChainingRequest chainingRequestWithInputs:outputSets:lbInputSymbolId:lbOutputSymbolId:procedureIndex:signalEvents:transactionHandle:fwEnqueueDelay:memoryPoolId:",
          "chain inputs=1 outputs=1 lbIn=0 lbOut=0 procedure=0 events=0 txn=1 delay=3 pool=0 qos=21"
        ])
        expect([metal.stat("buffersReady"), metal.stat("enqueued"), metal.stat("chains")]).toEqual([1, 2, 1])
      }))
      expect(yield* ane.liveHandles).toBe(0)
      expect(metal.live()).toBe(0)
      expect([metal.stat("rejected"), metal.stat("mismatches"), metal.stat("unpooled"), metal.stat("orphans")]).toEqual([0, 0, 0, 0])
      expect(fake.mismatches()).toBe(0)
    }).pipe(Effect.provide(aneLayer())))

  it.scopedLive("refuses in-memory MIL models before any native call, and a closed model with ClosedError", () =>
    Effect.gen(function*() {
      yield* setup
      const ane = yield* Ane.Ane
      const mil = yield* ane.compile(CompileOptions.mil({ text }))
      expect(yield* Effect.flip(PipelinedIO.make(mil))).toMatchObject({ _tag: "SharedEventRequiresPackageError", feature: "pipelined I/O" })
      expect(yield* Effect.flip(PipelinedIO.prepareChain(mil, []))).toMatchObject({ feature: "chaining" })
      expect(metal.stat("buffersReady") + metal.stat("chains")).toBe(0)
    }).pipe(Effect.provide(aneLayer())))
})
