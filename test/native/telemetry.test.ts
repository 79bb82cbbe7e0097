import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as NativeBackend from "../../src/native/NativeBackend.js"
import { CompileOptions } from "../../src/schema/CompileOptions.js"
import { DeviceInfo } from "../../src/schema/DeviceInfo.js"
import { EvalStats } from "../../src/schema/Telemetry.js"
import { Backend, type BackendModel } from "../../src/services/Backend.js"
import { doubleText } from "../services/programs.js"
import { type AttributeTensor, checkAfterEach, type DiagnosticsSpec, expectClean, fakeLayer, loadFake } from "./fake.js"

const fake = loadFake()
checkAfterEach(fake)

const layerWith = () => fakeLayer(fake)

const options = CompileOptions.mil({ text: doubleText(4, 32) })
const tensor = (Name: string): AttributeTensor => ({
  Channels: 4, Width: 32, Height: 1, RowStride: 64, PlaneStride: 64, Type: "Float16", Name
})

/** Layouts for the fake (it copies inputs to outputs) and telemetry defaults, both undone when the scope closes. */
const setup = Effect.acquireRelease(
  Effect.sync(() => {
    fake.resetTelemetry()
    fake.setAttributes({ inputs: [tensor("x")], outputs: [tensor("y")] })
  }),
  () =>
    Effect.sync(() => {
      fake.resetTelemetry()
      fake.setAttributes(undefined)
    })
)

const packageDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect-ane-pkg-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flip(Effect.flatMap(effect, () => Effect.dieMessage("expected a failure, got a success")))

const clean = () => expectClean(fake)

/** Messages of the fake's log other than respondsToSelector:, retain and release. */
const messages = () => fake.log().filter((l) => !/ (respondsToSelector:|retain|release)$/.test(l))
const count = (line: string) => fake.log().filter((l) => l === line).length

const FACTORY = "+_ANEPerformanceStats statsWithHardwareExecutionNS:"
const ATTACH = "-_ANERequest setPerfStats:"
const plain = (stats: EvalStats) => ({ ...stats, perfCounters: stats.perfCounters.map((c) => ({ ...c })) })

describe("evalWithStats over the fake runtime", () => {
  it.scopedLive("attaches one stats object per request, reads it after each evaluation and releases it on close", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({
        hwNs: 123_456_789n,
        counterData: new Uint8Array([1, 2, 3]),
        rawData: new Uint8Array([9, 8]),
        names: ["kANE_AF_TO_L2_DATA", "kANE_FP16_CYCLES", "kANE_NE_COMPUTE_CYCLES", "kANE_UKNOWN", "garbage_beyond"],
        counters: [[1, 500n], [7, 0xFFFF_FFFF_FFFF_FFFFn]]
      })
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const afterCompile = fake.live()
        fake.reset()
        const first = yield* model.request.evalWithStats
        expect(plain(first)).toEqual({
          source: "hardware",
          hwExecutionNs: 123_456_789,
          perfCounters: [
            { index: 0, name: "kANE_AF_TO_L2_DATA" },
            { index: 1, name: "kANE_FP16_CYCLES", value: 500n },
            { index: 2, name: "kANE_NE_COMPUTE_CYCLES" },
            { index: 7, value: 0xFFFF_FFFF_FFFF_FFFFn }
          ],
          perfCountersTruncated: false,
          perfStatsEntries: 0,
          perfCounterData: new Uint8Array([1, 2, 3]),
          rawStatsData: new Uint8Array([9, 8])
        })
        // Made and attached before the evaluation; the attached object is read after it (§13.2 steps 1–5).
        expect(messages().filter((l) => l.includes("_ANE")).slice(0, 8)).toEqual([
          FACTORY,
          ATTACH,
          "-_ANERequest validate",
          "-_ANEClient doEvaluateDirectWithModel:options:request:qos:error:",
          "-_ANERequest perfStatsArray",
          "-_ANERequest perfStats",
          "-_ANEPerformanceStats hwExecutionTime",
          "-_ANEPerformanceStats perfCounterData"
        ])
        // Names stop at the placeholder: slots 0..3 are asked, nothing past it.
        expect(count("-_ANEPerformanceStats stringForPerfCounter:")).toBe(4)
        // The stats object stays alive, held by us and by the request.
        expect(fake.live()).toBe(afterCompile + 1)
        fake.setStats({ hwNs: 1000n })
        const second = yield* model.request.evalWithStats
        const third = yield* model.request.evalWithStats
        expect([second.hwExecutionNs, third.hwExecutionNs]).toEqual([1000, 1000])
        expect([count(FACTORY), count(ATTACH)]).toEqual([1, 1])
        expect(count("-_ANERequest validate")).toBe(3)
        expect(fake.live()).toBe(afterCompile + 1)
        // Plain evaluations keep working with the object attached.
        yield* model.request.eval
      }))
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("reads element 0 of a non-empty perfStatsArray and reports how many entries it had", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({ hwNs: 5n, entries: 3, arrayHwNs: 777n })
      const model = yield* backend.compile(options)
      fake.reset()
      const stats = yield* model.request.evalWithStats
      expect([stats.source, stats.hwExecutionNs, stats.perfStatsEntries]).toEqual(["hardware", 777, 3])
      expect(fake.log()).not.toContain("-_ANERequest perfStats")
      expect([stats.perfCounterData.length, stats.rawStatsData.length, stats.perfCounters.length]).toEqual([0, 0, 0])
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("256 named slots and a named slot 256 are truncated; exactly 256 are not; an empty name stops the list", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      const model = yield* backend.compile(options)
      const names = Array.from({ length: 257 }, (_, i) => `kANE_COUNTER_${i}`)
      const cases = [
        { names, counters: 256, truncated: true, asked: 257 },
        { names: names.slice(0, 256), counters: 256, truncated: false, asked: 257 },
        { names: ["a", "b", "", "d"], counters: 2, truncated: false, asked: 3 }
      ]
      for (const c of cases) {
        fake.setStats({ names: c.names })
        fake.reset()
        const stats = yield* model.request.evalWithStats
        expect([stats.perfCounters.length, stats.perfCountersTruncated]).toEqual([c.counters, c.truncated])
        expect(stats.perfCounters.at(-1)).toEqual(expect.objectContaining({ index: c.counters - 1, name: c.names[c.counters - 1] }))
        expect(count("-_ANEPerformanceStats stringForPerfCounter:")).toBe(c.asked)
      }
      expect([fake.rejected(), fake.mismatches()]).toEqual([0, 0])
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("selectors the stats object does not answer leave their fields empty and are never sent", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({ hwNs: 42n, names: ["n0", "n1"], counters: [[0, 9n]], counterData: new Uint8Array([4]), rawData: null })
      fake.hide("-_ANEPerformanceStats hwExecutionTime")
      fake.hide("-_ANEPerformanceStats performanceCounters")
      fake.hide("-NSData getBytes:length:")
      const model = yield* backend.compile(options)
      fake.reset()
      const stats = yield* model.request.evalWithStats
      expect(plain(stats)).toEqual({
        source: "hardware",
        hwExecutionNs: 0,
        perfCounters: [{ index: 0, name: "n0" }, { index: 1, name: "n1" }],
        perfCountersTruncated: false,
        perfStatsEntries: 0,
        perfCounterData: new Uint8Array(0),
        rawStatsData: new Uint8Array(0)
      })
      expect(fake.rejected()).toBe(0)
      expect(fake.log()).not.toContain("-_ANEPerformanceStats hwExecutionTime")
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("with no stats object at all the result is EvalStats.unavailable, and creation is tried once per request", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({ hwNs: 99n, factory: false })
      const before = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        fake.reset()
        const stats = [yield* model.request.evalWithStats, yield* model.request.evalWithStats]
        for (const s of stats) expect(plain(s)).toEqual(plain(EvalStats.unavailable))
        expect([count(FACTORY), count(ATTACH)]).toEqual([1, 0])
      }))
      // A request that cannot take the object: it is made, not kept, and nothing is attached.
      fake.setStats({ factory: true })
      fake.hide(`-_ANERequest setPerfStats:`)
      fake.hide("-_ANERequest perfStatsArray")
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(options)
        const afterCompile = fake.live()
        fake.reset()
        const stats = yield* model.request.evalWithStats
        expect(plain(stats)).toEqual(plain(EvalStats.unavailable))
        expect([count(FACTORY), count(ATTACH), count("-_ANERequest perfStatsArray")]).toEqual([1, 0, 0])
        expect(fake.live()).toBe(afterCompile)
      }))
      expect(fake.live()).toBe(before)
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("an injected evaluation failure is the same EvalError as plain eval; the attached object is kept", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({ hwNs: 314n })
      const model = yield* backend.compile(options)
      fake.reset()
      // Direct, then the model's own evaluation: two failing calls each.
      fake.fail("eval", 1, 2, 0x1d)
      const withStats = yield* failure(model.request.evalWithStats)
      fake.reset()
      fake.fail("eval", 1, 2, 0x1d)
      const plainEval = yield* failure(model.request.eval)
      expect(withStats._tag).toBe("EvalError")
      expect(plainEval._tag).toBe("EvalError")
      if (withStats._tag === "EvalError" && plainEval._tag === "EvalError") {
        expect([withStats.domain, withStats.code, withStats.hint, withStats.model]).toEqual([
          plainEval.domain, plainEval.code, plainEval.hint, plainEval.model
        ])
        expect([withStats.domain, withStats.code]).toEqual(["com.apple.appleneuralengine", 0x1d])
        expect([withStats.op, plainEval.op]).toEqual(["BackendRequest.evalWithStats", "BackendRequest.eval"])
      }
      fake.reset()
      const stats = yield* model.request.evalWithStats
      expect(stats.hwExecutionNs).toBe(314)
      expect(count(FACTORY)).toBe(0)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("each mapped request gets its own object, released with it; after close it is a ClosedError", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.setStats({ hwNs: 7n })
      const before = fake.live()
      const scope = yield* Scope.make()
      const model: BackendModel = yield* Scope.extend(backend.compile(options), scope)
      fake.reset()
      yield* model.request.evalWithStats
      const afterFirst = fake.live()
      yield* Effect.scoped(Effect.gen(function*() {
        const extra = yield* model.mapRequest
        expect((yield* extra.evalWithStats).hwExecutionNs).toBe(7)
        expect(count(FACTORY)).toBe(2)
      }))
      expect(fake.live()).toBe(afterFirst)
      yield* Scope.close(scope, Exit.void)
      expect(fake.live()).toBe(before)
      const uses: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }>> = [model.request.evalWithStats, model.probeDiagnostics]
      for (const use of uses) expect((yield* failure(use))._tag).toBe("ClosedError")
      yield* clean()
    }).pipe(Effect.provide(layerWith())))
})

describe("probeDiagnostics over the fake runtime", () => {
  const inMemory: DiagnosticsSpec = {
    queueDepth: 127, program: true, inFlight: 3n, programQueueDepth: -2, programHandle: 0xABCn,
    handle: 0xFEDC_BA98_7654_3210n, state: 2n
  }
  const packageModel: DiagnosticsSpec = {
    queueDepth: 5, program: true, inFlight: 11n, programQueueDepth: 4, programHandle: 0x77n, handle: 0x1234n, state: 9n
  }

  it.scopedLive("MIL models probe the _ANEInMemoryModel and its program, in the spec's order", () =>
    Effect.gen(function*() {
      yield* setup
      fake.setDiagnostics("_ANEInMemoryModel", inMemory)
      fake.setDiagnostics("_ANEModel", packageModel)
      const backend = yield* Backend
      const model = yield* backend.compile(options)
      fake.reset()
      const d = yield* model.probeDiagnostics
      expect({ ...d }).toEqual({
        programClass: "ANEInMemoryModel",
        modelQueueDepth: 127,
        asyncRequestsInFlight: 3,
        programQueueDepth: -2,
        programHandle: 0xFEDC_BA98_7654_3210n,
        modelState: 2n
      })
      expect(messages()).toEqual([
        "-_ANEInMemoryModel queueDepth",
        "-_ANEInMemoryModel program",
        "-_ANEProgramForEvaluation currentAsyncRequestsInFlight",
        "-_ANEProgramForEvaluation queueDepth",
        "-_ANEProgramForEvaluation programHandle",
        "-_ANEInMemoryModel programHandle",
        "-_ANEInMemoryModel state"
      ])
      expect([fake.rejected(), fake.mismatches()]).toEqual([0, 0])
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("a missing selector leaves its field absent; without a program only the model's fields are set", () =>
    Effect.gen(function*() {
      yield* setup
      fake.setDiagnostics("_ANEInMemoryModel", inMemory)
      fake.hide("-_ANEInMemoryModel programHandle")
      fake.hide("-_ANEInMemoryModel state")
      fake.hide("-_ANEProgramForEvaluation currentAsyncRequestsInFlight")
      const backend = yield* Backend
      const model = yield* backend.compile(options)
      const d = yield* model.probeDiagnostics
      // The program's handle stands when the model does not answer its own.
      expect({ ...d }).toEqual({ programClass: "ANEInMemoryModel", modelQueueDepth: 127, programQueueDepth: -2, programHandle: 0xABCn })
      expect("modelState" in d).toBe(false)
      fake.setDiagnostics("_ANEInMemoryModel", { ...inMemory, program: false })
      const bare = yield* model.probeDiagnostics
      expect({ ...bare }).toEqual({ programClass: "ANEInMemoryModel", modelQueueDepth: 127 })
      expect(fake.rejected()).toBe(0)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("packages probe the _ANEModel", () =>
    Effect.gen(function*() {
      yield* setup
      fake.setDiagnostics("_ANEInMemoryModel", inMemory)
      fake.setDiagnostics("_ANEModel", packageModel)
      const path = yield* packageDir
      const backend = yield* Backend
      yield* Effect.scoped(Effect.gen(function*() {
        const model = yield* backend.compile(CompileOptions.package({ path }))
        fake.reset()
        const d = yield* model.probeDiagnostics
        expect({ ...d }).toEqual({
          programClass: "ANEModel", modelQueueDepth: 5, asyncRequestsInFlight: 11, programQueueDepth: 4, programHandle: 0x1234n, modelState: 9n
        })
        expect(messages().every((l) => l.startsWith("-_ANEModel ") || l.startsWith("-_ANEProgramForEvaluation "))).toBe(true)
      }))
      yield* clean()
    }).pipe(Effect.provide(layerWith())))
})

describe("clientInfo over the fake runtime", () => {
  it.scopedLive("reads the virtual client's seven capabilities through the shared connection", () =>
    Effect.gen(function*() {
      yield* setup
      fake.setVirtualClient({
        numAnes: 2, numCores: 32, architecture: "h17g", boardType: 272, capabilityMask: 0xFFFF_FFFF_FFFF_FFF0n,
        dataInterfaceVersion: 0xFFFF_FFFE, precompiled: true
      })
      const backend = yield* Backend
      fake.reset()
      const info = yield* backend.clientInfo
      expect({ ...info }).toEqual({
        numAnes: 2, numCores: 32, architecture: "h17g", boardType: 272, capabilityMask: 0xFFFF_FFFF_FFFF_FFF0n,
        dataInterfaceVersion: 0xFFFF_FFFEn, precompiledBinarySupported: true
      })
      // sharedPrivateConnection is not answered by the fake, so it is never sent.
      expect(messages().slice(0, 3)).toEqual(["+_ANEClient sharedConnection", "-_ANEClient virtualClient", "-_ANEVirtualClient numANEs"])
      expect(fake.log().slice(0, 3)).toEqual(["+_ANEClient respondsToSelector:", "+_ANEClient respondsToSelector:", "+_ANEClient sharedConnection"])
      fake.hide("-_ANEVirtualClient negotiatedCapabilityMask")
      fake.setVirtualClient({
        numAnes: 1, numCores: 16, architecture: "h16", boardType: 1, capabilityMask: 1n, dataInterfaceVersion: 3, precompiled: false
      })
      const less = yield* backend.clientInfo
      expect("capabilityMask" in less).toBe(false)
      expect([less.dataInterfaceVersion, less.precompiledBinarySupported, less.boardType]).toEqual([3n, false, 1])
      expect(fake.rejected()).toBe(0)
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("without a virtual client falls back to the _ANEDeviceInfo class methods", () =>
    Effect.gen(function*() {
      yield* setup
      const backend = yield* Backend
      fake.reset()
      const info = yield* backend.clientInfo
      // The fake's _ANEDeviceInfo answers: 1 ANE, 16 cores, "h16", board 208; the negotiated fields stay absent.
      expect({ ...info }).toEqual({ numAnes: 1, numCores: 16, architecture: "h16", boardType: 208 })
      expect(messages().filter((l) => l.startsWith("+_ANEDeviceInfo"))).toEqual([
        "+_ANEDeviceInfo numANEs", "+_ANEDeviceInfo numANECores", "+_ANEDeviceInfo aneArchitectureType", "+_ANEDeviceInfo aneBoardType"
      ])
      yield* clean()
    }).pipe(Effect.provide(layerWith())))

  it.scopedLive("no client connection is a NoAneError; so is a backend with no runtime loaded", () =>
    Effect.gen(function*() {
      yield* setup
      for (const step of ["sharedConnection", "alloc", "new"] as const) fake.clientStep(step, "nil")
      const backend = yield* Backend
      const error = yield* failure(backend.clientInfo)
      expect(error._tag).toBe("NoAneError")
      expect(error.reason).toContain("sharedConnection")
      const info = DeviceInfo.make({
        hasAne: true, numCores: 16, architecture: "h16", product: "p", buildVersion: "b", isVm: false, numAnes: 1,
        subType: "", boardType: 0, internalBuild: false, backend: "hardware"
      })
      const bare = yield* failure(NativeBackend.makeBackend(info).clientInfo)
      expect(bare._tag).toBe("NoAneError")
      expect(fake.rejected()).toBe(0)
    }).pipe(Effect.provide(layerWith())))
})
