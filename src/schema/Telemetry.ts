/**
 * What the engine reports about an evaluation, a loaded model and the client (spec/native-protocol.md §13).
 * A field that is absent was not reported: the selector was missing or the backend does not model it. That is
 * different from a reported zero.
 */
import * as Schema from "effect/Schema"
import { DeviceInfo } from "./DeviceInfo.js"

/** Metric values by name, as `reportMetrics` gives them (per operation, like a benchmark's custom metrics). */
export type Metrics = Record<string, number>

/**
 * A counter or metric name as a metric key: letters and digits lower-cased, every other run of characters one `-`,
 * none leading or trailing (spec/native-protocol.md §13.3).
 */
export const sanitizeMetricName = (name: string): string => {
  let out = ""
  let gap = false
  for (const ch of name) {
    if (/[\p{L}\p{N}]/u.test(ch)) {
      if (gap && out.length > 0) out += "-"
      out += ch.toLowerCase()
      gap = false
    } else gap = true
  }
  return out
}

/** One hardware performance counter slot. */
export class PerfCounter extends Schema.Class<PerfCounter>("PerfCounter")({
  index: Schema.Number,
  /** The engine's name for the slot; absent when a value came for a slot with no name. */
  name: Schema.optional(Schema.String),
  /** Raw u64 value; absent when the slot is named but no value was reported. */
  value: Schema.optional(Schema.BigIntFromSelf)
}) {}

/**
 * Statistics of one evaluation. `source` says where `hwExecutionNs` comes from: the engine's own timer
 * (`"hardware"`), the simulator's latency model (`"modelled"`), or nowhere (`"unavailable"`, all fields empty).
 */
export class EvalStats extends Schema.Class<EvalStats>("EvalStats")({
  source: Schema.Literal("hardware", "modelled", "unavailable"),
  /** Execution time in ns (the engine reports a u64; exact below 2^53 ns, about 104 days). */
  hwExecutionNs: Schema.Number,
  perfCounters: Schema.Array(PerfCounter),
  /** True when all 256 probed slots had names and slot 256 had one too: there are more than listed. */
  perfCountersTruncated: Schema.Boolean,
  /** How many stats objects the request reported (0 when the request's own was read). */
  perfStatsEntries: Schema.Number,
  perfCounterData: Schema.Uint8ArrayFromSelf,
  rawStatsData: Schema.Uint8ArrayFromSelf
}) {
  /** Whether anything was reported: a time, counters, data bytes or stats entries (§13.3). */
  get available(): boolean {
    return this.hwExecutionNs > 0 || this.perfCounterData.length > 0 || this.rawStatsData.length > 0 ||
      this.perfCounters.length > 0 || this.perfStatsEntries > 0
  }
  /** `hw-ns/op`, one `<name>/op` per counter (`perf-counter-<index>/op` when unnamed), byte counts and flags. */
  reportMetrics(): Metrics {
    const m: Metrics = {}
    if (this.hwExecutionNs > 0) m["hw-ns/op"] = this.hwExecutionNs
    for (const c of this.perfCounters) {
      const name = c.name === undefined ? "" : sanitizeMetricName(c.name)
      m[`${name === "" ? `perf-counter-${c.index}` : name}/op`] = Number(c.value ?? 0n)
    }
    if (this.perfCounterData.length > 0) m["perf-counter-bytes/op"] = this.perfCounterData.length
    if (this.rawStatsData.length > 0) m["raw-stats-bytes/op"] = this.rawStatsData.length
    if (this.perfCountersTruncated) m["perf-counters-truncated/op"] = 1
    if (this.perfStatsEntries > 0) m["perf-stats-entries/op"] = this.perfStatsEntries
    return m
  }
  override toString(): string {
    return this.available
      ? `EvalStats{hw=${this.hwExecutionNs}ns counters=${this.perfCounters.length} entries=${this.perfStatsEntries}}`
      : "EvalStats{}"
  }
  static readonly unavailable = EvalStats.make({
    source: "unavailable",
    hwExecutionNs: 0,
    perfCounters: [],
    perfCountersTruncated: false,
    perfStatsEntries: 0,
    perfCounterData: new Uint8Array(0),
    rawStatsData: new Uint8Array(0)
  })
}

/** The state of a loaded model's queues and program, each field as far as the backend reports it. */
export class ModelDiagnostics extends Schema.Class<ModelDiagnostics>("ModelDiagnostics")({
  /** The class that was probed: `"ANEInMemoryModel"`, `"ANEModel"`, or the simulator's `"SimulatorModel"`. */
  programClass: Schema.optional(Schema.String),
  modelQueueDepth: Schema.optional(Schema.Number),
  asyncRequestsInFlight: Schema.optional(Schema.Number),
  programQueueDepth: Schema.optional(Schema.Number),
  programHandle: Schema.optional(Schema.BigIntFromSelf),
  modelState: Schema.optional(Schema.BigIntFromSelf)
}) {
  /** Whether any field was reported. */
  get available(): boolean {
    return Object.values(this).some((v) => v !== undefined)
  }
  /** The reported numeric fields as metrics (§13.3). */
  reportMetrics(): Metrics {
    const m: Metrics = {}
    if (this.modelQueueDepth !== undefined) m["model-queue-depth"] = this.modelQueueDepth
    if (this.asyncRequestsInFlight !== undefined) m["async-in-flight"] = this.asyncRequestsInFlight
    if (this.programQueueDepth !== undefined) m["program-queue-depth"] = this.programQueueDepth
    if (this.programHandle !== undefined) m["program-handle"] = Number(this.programHandle)
    if (this.modelState !== undefined) m["model-state"] = Number(this.modelState)
    return m
  }
  /** `Diagnostics{class=… queue=… inflight=… handle=0x… state=…}` with the reported parts (no program queue). */
  override toString(): string {
    const parts: Array<string> = []
    if (this.programClass !== undefined) parts.push(`class=${this.programClass}`)
    if (this.modelQueueDepth !== undefined) parts.push(`queue=${this.modelQueueDepth}`)
    if (this.asyncRequestsInFlight !== undefined) parts.push(`inflight=${this.asyncRequestsInFlight}`)
    if (this.programHandle !== undefined) parts.push(`handle=0x${this.programHandle.toString(16)}`)
    if (this.modelState !== undefined) parts.push(`state=${this.modelState}`)
    return `Diagnostics{${parts.join(" ")}}`
  }
}

/** What the client negotiated with the engine (the virtual client where there is one). */
export class ClientInfo extends Schema.Class<ClientInfo>("ClientInfo")({
  numAnes: Schema.optional(Schema.Number),
  numCores: Schema.optional(Schema.Number),
  architecture: Schema.optional(Schema.String),
  boardType: Schema.optional(Schema.Number),
  capabilityMask: Schema.optional(Schema.BigIntFromSelf),
  dataInterfaceVersion: Schema.optional(Schema.BigIntFromSelf),
  precompiledBinarySupported: Schema.optional(Schema.Boolean)
}) {
  /** Whether any field was reported. */
  get available(): boolean {
    return Object.values(this).some((v) => v !== undefined)
  }
}

/** Where the engine caches compiled programs; no backend reports it (the cache manager is not reachable in-process). */
export class CacheInfo extends Schema.Class<CacheInfo>("CacheInfo")({
  cacheDir: Schema.optional(Schema.String)
}) {
  get available(): boolean {
    return this.cacheDir !== undefined
  }
}

/** Wall-clock timing of a shared-event evaluation, ns; zero when not measured. */
export class EventTiming extends Schema.Class<EventTiming>("EventTiming")({
  enqueueNs: Schema.Number,
  totalNs: Schema.Number
}) {
  get available(): boolean {
    return this.totalNs > 0
  }
  reportMetrics(): Metrics {
    return this.available ? { "enqueue-ns/op": this.enqueueNs, "total-ns/op": this.totalNs } : {}
  }
  override toString(): string {
    return this.available ? `EventTiming{enqueue=${this.enqueueNs}ns total=${this.totalNs}ns}` : "EventTiming{}"
  }
  static readonly empty = EventTiming.make({ enqueueNs: 0, totalNs: 0 })
}

/** The device, what the client negotiated, and the cache, in one value. */
export class ClientSnapshot extends Schema.Class<ClientSnapshot>("ClientSnapshot")({
  device: DeviceInfo,
  client: ClientInfo,
  cache: CacheInfo
}) {
  get available(): boolean {
    return this.device.hasAne || this.client.available || this.cache.available
  }
  /** Device counts when there is an engine, then the client's and cache's reported fields (§13.3). */
  reportMetrics(): Metrics {
    const m: Metrics = {}
    const { device: d, client: c } = this
    if (d.hasAne) {
      m["ane-cores"] = d.numCores
      m["ane-count"] = d.numAnes
      m["ane-board-type"] = d.boardType
      if (d.isVm) m["ane-is-vm"] = 1
      if (d.internalBuild) m["ane-internal-build"] = 1
    }
    if (c.numCores !== undefined) m["ane-client-cores"] = c.numCores
    if (c.capabilityMask !== undefined) m["ane-capability-mask"] = Number(c.capabilityMask)
    if (c.dataInterfaceVersion !== undefined) m["ane-data-interface-version"] = Number(c.dataInterfaceVersion)
    if (c.precompiledBinarySupported === true) m["ane-precompiled-binary-supported"] = 1
    if (this.cache.available) m["ane-cache-available"] = 1
    return m
  }
  override toString(): string {
    const parts: Array<string> = []
    const d = this.device
    if (d.hasAne) {
      parts.push(`cores=${d.numCores}`)
      if (d.architecture !== "") parts.push(`arch=${d.architecture}`)
      if (d.product !== "") parts.push(`product=${d.product}`)
      if (d.isVm) parts.push("vm=true")
    }
    if (this.client.capabilityMask !== undefined) parts.push(`cap=0x${this.client.capabilityMask.toString(16)}`)
    if (this.cache.cacheDir !== undefined) parts.push(`cache=${this.cache.cacheDir}`)
    return `ClientSnapshot{${parts.join(" ")}}`
  }
}

/** An evaluation's statistics with the model's diagnostics and, for shared-event evaluations, their timing. */
export class EvalTelemetry extends Schema.Class<EvalTelemetry>("EvalTelemetry")({
  stats: EvalStats,
  diagnostics: ModelDiagnostics,
  timing: EventTiming
}) {
  get available(): boolean {
    return this.stats.available || this.diagnostics.available || this.timing.available
  }
  reportMetrics(): Metrics {
    return { ...this.stats.reportMetrics(), ...this.diagnostics.reportMetrics(), ...this.timing.reportMetrics() }
  }
  override toString(): string {
    const parts: Array<string> = []
    if (this.stats.available) parts.push(`hw=${this.stats.hwExecutionNs}ns counters=${this.stats.perfCounters.length}`)
    if (this.diagnostics.available) parts.push(this.diagnostics.toString())
    if (this.timing.available) parts.push(this.timing.toString())
    return `EvalTelemetry{${parts.join(" ")}}`
  }
}
