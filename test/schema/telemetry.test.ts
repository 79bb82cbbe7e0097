/** The telemetry values' availability, metric and string rules (spec/native-protocol.md §13.3, §16.5 vectors). */
import { describe, expect, it } from "@effect/vitest"
import { DeviceInfo } from "../../src/schema/DeviceInfo.js"
import {
  CacheInfo,
  ClientInfo,
  ClientSnapshot,
  EvalStats,
  EvalTelemetry,
  EventTiming,
  ModelDiagnostics,
  PerfCounter,
  sanitizeMetricName
} from "../../src/schema/Telemetry.js"

const device = (o: Partial<DeviceInfo> = {}) => DeviceInfo.make({
  hasAne: false, numCores: 0, architecture: "", product: "", buildVersion: "", isVm: false, numAnes: 0, subType: "",
  boardType: 0, internalBuild: false, backend: "hardware", ...o
})
const stats = (o: Partial<ConstructorParameters<typeof EvalStats>[0]>) => EvalStats.make({ ...EvalStats.unavailable, source: "hardware", ...o })
const snapshot = (d: Partial<DeviceInfo>, c: ConstructorParameters<typeof ClientInfo>[0] = {}, cache?: string) =>
  ClientSnapshot.make({ device: device(d), client: ClientInfo.make(c), cache: CacheInfo.make(cache === undefined ? {} : { cacheDir: cache }) })

describe("availability", () => {
  it("is false for every empty value and true as soon as one thing was reported", () => {
    const empty = [EvalStats.unavailable, ModelDiagnostics.make({}), ClientInfo.make({}), CacheInfo.make({}),
      EventTiming.empty, snapshot({}),
      EvalTelemetry.make({ stats: EvalStats.unavailable, diagnostics: ModelDiagnostics.make({}), timing: EventTiming.empty })]
    expect(empty.map((v) => v.available)).toEqual(empty.map(() => false))
    const some = [
      ClientInfo.make({ numCores: 16 }), CacheInfo.make({ cacheDir: "/c" }), stats({ hwExecutionNs: 1 }),
      EventTiming.make({ enqueueNs: 0, totalNs: 1 }), ModelDiagnostics.make({ programClass: "ANEInMemoryModel" }),
      snapshot({ hasAne: true }),
      EvalTelemetry.make({ stats: EvalStats.unavailable, diagnostics: ModelDiagnostics.make({ programClass: "x" }), timing: EventTiming.empty }),
      stats({ rawStatsData: new Uint8Array([1]) }), stats({ perfStatsEntries: 1 })
    ]
    expect(some.map((v) => v.available)).toEqual(some.map(() => true))
  })
})

describe("reportMetrics", () => {
  it("reports eval stats, with names sanitised and unnamed counters by index", () => {
    expect(stats({
      hwExecutionNs: 1234, perfCounterData: new Uint8Array(3), rawStatsData: new Uint8Array(2), perfCountersTruncated: true,
      perfCounters: [PerfCounter.make({ index: 0, name: "cycles", value: 100n }), PerfCounter.make({ index: 1, value: 200n })]
    }).reportMetrics()).toEqual({
      "hw-ns/op": 1234, "cycles/op": 100, "perf-counter-1/op": 200, "perf-counter-bytes/op": 3, "raw-stats-bytes/op": 2,
      "perf-counters-truncated/op": 1
    })
    expect(stats({
      perfCounters: [PerfCounter.make({ index: 0, name: "ANE.HW.Cycles", value: 100n }), PerfCounter.make({ index: 1, name: "", value: 200n }),
        PerfCounter.make({ index: 5, name: "perf_counter__weird", value: 300n })]
    }).reportMetrics()).toEqual({ "ane-hw-cycles/op": 100, "perf-counter-1/op": 200, "perf-counter-weird/op": 300 })
    expect(stats({ perfCounters: [PerfCounter.make({ index: 0, name: "kANE_FP16_CYCLES", value: 9n })] }).reportMetrics())
      .toEqual({ "kane-fp16-cycles/op": 9 })
    expect(stats({ perfStatsEntries: 3 }).reportMetrics()).toEqual({ "perf-stats-entries/op": 3 })
    expect(EvalStats.unavailable.reportMetrics()).toEqual({})
  })

  it("reports the reported diagnostics and event timing only", () => {
    expect(ModelDiagnostics.make({ modelQueueDepth: 127, asyncRequestsInFlight: 3, programHandle: 0xffn, modelState: 2n })
      .reportMetrics()).toEqual({ "model-queue-depth": 127, "async-in-flight": 3, "program-handle": 255, "model-state": 2 })
    expect(ModelDiagnostics.make({}).reportMetrics()).toEqual({})
    expect(EventTiming.make({ enqueueNs: 500, totalNs: 1000 }).reportMetrics()).toEqual({ "enqueue-ns/op": 500, "total-ns/op": 1000 })
    expect(EventTiming.empty.reportMetrics()).toEqual({})
  })

  it("reports a client snapshot: device counts with an engine, then what the client and cache reported", () => {
    expect(snapshot({ hasAne: true, numCores: 16, numAnes: 1, boardType: 272 }, { numCores: 16, capabilityMask: 0xffn })
      .reportMetrics()).toEqual({
      "ane-cores": 16, "ane-count": 1, "ane-board-type": 272, "ane-client-cores": 16, "ane-capability-mask": 255
    })
    const broad = snapshot({ hasAne: true, numCores: 8, isVm: true, internalBuild: true }, { precompiledBinarySupported: true }, "/tmp/cache")
      .reportMetrics()
    expect(broad).toMatchObject({ "ane-is-vm": 1, "ane-internal-build": 1, "ane-precompiled-binary-supported": 1, "ane-cache-available": 1 })
    const plain = snapshot({ hasAne: true, numCores: 8 }).reportMetrics()
    for (const k of ["ane-is-vm", "ane-internal-build", "ane-precompiled-binary-supported", "ane-cache-available"]) expect(plain).not.toHaveProperty(k)
  })

  it("combines the three parts of an evaluation's telemetry", () => {
    const m = EvalTelemetry.make({
      stats: stats({ hwExecutionNs: 10 }),
      diagnostics: ModelDiagnostics.make({ modelQueueDepth: 4 }),
      timing: EventTiming.make({ enqueueNs: 5, totalNs: 7 })
    }).reportMetrics()
    expect(m).toEqual({ "hw-ns/op": 10, "model-queue-depth": 4, "enqueue-ns/op": 5, "total-ns/op": 7 })
  })
})

describe("strings", () => {
  it("prints empty values with empty braces and the reported parts in order", () => {
    expect([ModelDiagnostics.make({}), EventTiming.empty, snapshot({}),
      EvalTelemetry.make({ stats: EvalStats.unavailable, diagnostics: ModelDiagnostics.make({}), timing: EventTiming.empty }),
      EvalStats.unavailable].map(String)).toEqual(["Diagnostics{}", "EventTiming{}", "ClientSnapshot{}", "EvalTelemetry{}", "EvalStats{}"])
    expect(String(ModelDiagnostics.make({ programClass: "ANEInMemoryModel", modelState: 3n })))
      .toBe("Diagnostics{class=ANEInMemoryModel state=3}")
    expect(String(ModelDiagnostics.make({ programHandle: 0xabn, programQueueDepth: 9, modelQueueDepth: 2 })))
      .toBe("Diagnostics{queue=2 handle=0xab}")
    expect(String(EventTiming.make({ enqueueNs: 500, totalNs: 1000 }))).toBe("EventTiming{enqueue=500ns total=1000ns}")
    expect(String(stats({ hwExecutionNs: 7, perfStatsEntries: 1 }))).toBe("EvalStats{hw=7ns counters=0 entries=1}")
    expect(String(snapshot({ hasAne: true, numCores: 16, architecture: "h16", isVm: true }, { capabilityMask: 0xffn }, "/c")))
      .toBe("ClientSnapshot{cores=16 arch=h16 vm=true cap=0xff cache=/c}")
  })
})

describe("sanitizeMetricName", () => {
  it("follows the spec's vectors", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["simple", "simple"], ["CamelCase", "camelcase"], ["snake_case", "snake-case"], ["with spaces", "with-spaces"],
      ["ANE.HW.Cycles", "ane-hw-cycles"], ["perf_counter__double", "perf-counter-double"],
      ["  leading_trailing  ", "leading-trailing"], ["MixOf.Everything_Here 123", "mixof-everything-here-123"],
      ["kANEFPerfCounter", "kanefperfcounter"], ["", ""], ["---", ""], ["a", "a"], ["123", "123"], ["Größe_µs", "größe-µs"]
    ]
    expect(cases.map(([input]) => sanitizeMetricName(input))).toEqual(cases.map(([, want]) => want))
  })
})
