/**
 * Telemetry reads over the {@link Objc} binding (spec/native-protocol.md §13.2): perf-stats objects attached to a
 * request, model and program diagnostics, and the client's negotiated capabilities. Every read is best effort: a
 * selector the receiver does not answer (`respondsToSelector:`) is skipped, a throw from the FFI layer leaves the
 * field unset, and nothing here ever fails. Callers run these inside an autorelease pool.
 */
import { ClientInfo, EvalStats, ModelDiagnostics, PerfCounter } from "../schema/Telemetry.js"
import { type Id, nil, type Objc } from "./objc.js"

/** The firmware's name for an undefined counter slot (sic: the engine spells it this way). */
export const PERF_COUNTER_PLACEHOLDER = "kANE_UKNOWN"

/** Counter slots probed by name; one more is probed to tell whether the list was cut short. */
export const PERF_COUNTER_SCAN = 256

/** `f()`, or undefined when the FFI layer throws. */
const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}

/** Sends `selector` only when `receiver` answers it; undefined otherwise (or on a throw). */
const ask = <A>(rt: Objc, receiver: Id, selector: string, read: () => A): A | undefined =>
  receiver === nil ? undefined : attempt(() => (rt.responds(receiver, selector) ? read() : undefined))

/** A koffi 64-bit result (a number when safe, else a bigint) as a bigint. */
const big = (value: unknown): bigint => (typeof value === "bigint" ? value : BigInt(Number(value)))

const u64 = (rt: Objc, receiver: Id, selector: string): bigint | undefined =>
  ask(rt, receiver, selector, () => big(rt.send(receiver, selector, "uint64()")))

const int = (rt: Objc, receiver: Id, selector: string, signature: string): number | undefined =>
  ask(rt, receiver, selector, () => rt.int(receiver, selector, signature))

const text = (rt: Objc, receiver: Id, selector: string): string | undefined =>
  ask(rt, receiver, selector, () => {
    const object = rt.id(receiver, selector)
    return object === nil ? undefined : rt.describe(object)
  })

/** A copy of an NSData's bytes (`-length`, `-getBytes:length:`); empty for nil or when it cannot be read. */
const bytesOf = (rt: Objc, data: Id): Uint8Array => {
  if (data === nil) return new Uint8Array(0)
  const length = ask(rt, data, "length", () => Number(rt.send(data, "length", "uint64()")))
  if (length === undefined || !Number.isSafeInteger(length) || length <= 0) return new Uint8Array(0)
  const copy = new Uint8Array(length)
  const done = ask(rt, data, "getBytes:length:", () => {
    rt.send(data, "getBytes:length:", "void(ptr,uint64)", copy, length)
    return true
  })
  return done === true ? copy : new Uint8Array(0)
}

/**
 * Makes a perf-stats object (`+[_ANEPerformanceStats statsWithHardwareExecutionNS:]` with 0) and attaches it to
 * `request` (`-setPerfStats:`). Returns it retained (+1, the caller releases it with the request), or nil when the
 * class, the factory or the setter is missing.
 */
export const attachPerfStats = (rt: Objc, request: Id): Id => {
  const cls = attempt(() => rt.cls("_ANEPerformanceStats")) ?? nil
  const stats = ask(rt, cls, "statsWithHardwareExecutionNS:", () => rt.id(cls, "statsWithHardwareExecutionNS:", "id(uint64)", 0n)) ?? nil
  if (stats === nil) return nil
  const attached = ask(rt, request, "setPerfStats:", () => {
    rt.send(request, "setPerfStats:", "void(id)", stats)
    return true
  })
  return attached === true ? rt.retain(stats) : nil
}

/** The names of the counter slots (§13.2 step 6) and whether slot 256 had a real name too. */
const counterNames = (rt: Objc, stats: Id): { readonly counters: Array<PerfCounter>; readonly truncated: boolean } => {
  const counters: Array<PerfCounter> = []
  if (attempt(() => rt.responds(stats, "stringForPerfCounter:")) !== true) return { counters, truncated: false }
  const nameAt = (index: number): string | undefined =>
    attempt(() => {
      const object = rt.id(stats, "stringForPerfCounter:", "id(int64)", index)
      if (object === nil) return undefined
      const name = rt.describe(object)
      return name === "" || name === PERF_COUNTER_PLACEHOLDER ? undefined : name
    })
  for (let index = 0; index < PERF_COUNTER_SCAN; index++) {
    const name = nameAt(index)
    if (name === undefined) break
    counters.push(PerfCounter.make({ index, name }))
  }
  const truncated = counters.length === PERF_COUNTER_SCAN && nameAt(PERF_COUNTER_SCAN) !== undefined
  return { counters, truncated }
}

/** Merges `-performanceCounters` (NSNumber index → NSNumber value) into `counters` by index (§13.2 step 7). */
const mergeCounterValues = (rt: Objc, stats: Id, counters: Array<PerfCounter>): void => {
  const dict = ask(rt, stats, "performanceCounters", () => rt.id(stats, "performanceCounters")) ?? nil
  const keys = ask(rt, dict, "allKeys", () => rt.id(dict, "allKeys")) ?? nil
  const n = ask(rt, keys, "count", () => rt.count(keys)) ?? 0
  for (let i = 0; i < n; i++) {
    const key = attempt(() => rt.objectAt(keys, i)) ?? nil
    const index = ask(rt, key, "intValue", () => rt.intValue(key))
    const number = index === undefined ? nil : attempt(() => rt.id(dict, "objectForKey:", "id(id)", key)) ?? nil
    const value = u64(rt, number, "unsignedLongLongValue")
    if (index === undefined || value === undefined) continue
    const at = counters.findIndex((c) => c.index === index)
    if (at >= 0) counters[at] = PerfCounter.make({ ...counters[at]!, value })
    else counters.push(PerfCounter.make({ index, value }))
  }
}

/**
 * Reads the stats of the evaluation that just ran on `request` (§13.2 steps 4–7): element 0 of `perfStatsArray`
 * when it has entries, else the request's own `perfStats`. With no stats object at all, {@link EvalStats.unavailable}.
 */
export const readEvalStats = (rt: Objc, request: Id): EvalStats => {
  const array = ask(rt, request, "perfStatsArray", () => rt.id(request, "perfStatsArray")) ?? nil
  const entries = ask(rt, array, "count", () => rt.count(array)) ?? 0
  let stats = entries > 0 ? attempt(() => rt.objectAt(array, 0)) ?? nil : nil
  if (entries === 0) stats = ask(rt, request, "perfStats", () => rt.id(request, "perfStats")) ?? nil
  if (stats === nil) return EvalStats.unavailable
  const hw = u64(rt, stats, "hwExecutionTime") ?? 0n
  const perfCounterData = bytesOf(rt, ask(rt, stats, "perfCounterData", () => rt.id(stats, "perfCounterData")) ?? nil)
  const rawStatsData = bytesOf(rt, ask(rt, stats, "pStatsRawData", () => rt.id(stats, "pStatsRawData")) ?? nil)
  const { counters, truncated } = counterNames(rt, stats)
  mergeCounterValues(rt, stats, counters)
  return EvalStats.make({
    source: "hardware",
    hwExecutionNs: Number(hw),
    perfCounters: counters,
    perfCountersTruncated: truncated,
    perfStatsEntries: entries,
    perfCounterData,
    rawStatsData
  })
}

type Mutable<T> = { -readonly [K in keyof T]?: T[K] }

/**
 * §13.2 ProbeDiagnostics over a model object (`_ANEInMemoryModel` for MIL, `_ANEModel` for packages): queue depth,
 * the program's in-flight count, queue depth and handle, the model's own handle (which wins) and state. A field
 * whose selector is not answered stays absent.
 */
export const probeDiagnostics = (rt: Objc, model: Id, programClass: string): ModelDiagnostics => {
  const d: Mutable<ModelDiagnostics> = { programClass }
  const set = <K extends keyof ModelDiagnostics>(key: K, value: ModelDiagnostics[K] | undefined) => {
    if (value !== undefined) d[key] = value
  }
  set("modelQueueDepth", int(rt, model, "queueDepth", "int8()"))
  const program = ask(rt, model, "program", () => rt.id(model, "program")) ?? nil
  if (program !== nil) {
    set("asyncRequestsInFlight", ask(rt, program, "currentAsyncRequestsInFlight", () => Number(big(rt.send(program, "currentAsyncRequestsInFlight", "int64()")))))
    set("programQueueDepth", int(rt, program, "queueDepth", "int8()"))
    set("programHandle", u64(rt, program, "programHandle"))
  }
  set("programHandle", u64(rt, model, "programHandle"))
  set("modelState", u64(rt, model, "state"))
  return ModelDiagnostics.make(d)
}

/**
 * §13.2 ProbeClientInfo: the virtual client's seven capability selectors when `-virtualClient` answers an object;
 * else the `_ANEDeviceInfo` class methods `numANEs`, `numANECores`, `aneArchitectureType` and `aneBoardType`, the
 * negotiated fields staying absent.
 */
export const probeClientInfo = (rt: Objc, client: Id): ClientInfo => {
  const info: Mutable<ClientInfo> = {}
  const set = <K extends keyof ClientInfo>(key: K, value: ClientInfo[K] | undefined) => {
    if (value !== undefined) info[key] = value
  }
  const virtual = ask(rt, client, "virtualClient", () => rt.id(client, "virtualClient")) ?? nil
  if (virtual !== nil) {
    set("numAnes", int(rt, virtual, "numANEs", "uint32()"))
    set("numCores", int(rt, virtual, "numANECores", "uint32()"))
    set("architecture", text(rt, virtual, "aneArchitectureTypeStr"))
    set("boardType", int(rt, virtual, "aneBoardtype", "int64()"))
    set("capabilityMask", u64(rt, virtual, "negotiatedCapabilityMask"))
    set("dataInterfaceVersion", ask(rt, virtual, "negotiatedDataInterfaceVersion", () => big(rt.send(virtual, "negotiatedDataInterfaceVersion", "uint32()"))))
    set("precompiledBinarySupported", ask(rt, virtual, "validateEnvironmentForPrecompiledBinarySupport", () => rt.bool(virtual, "validateEnvironmentForPrecompiledBinarySupport")))
    return ClientInfo.make(info)
  }
  const device = attempt(() => rt.cls("_ANEDeviceInfo")) ?? nil
  set("numAnes", int(rt, device, "numANEs", "uint32()"))
  set("numCores", int(rt, device, "numANECores", "uint32()"))
  set("architecture", text(rt, device, "aneArchitectureType"))
  set("boardType", int(rt, device, "aneBoardType", "int64()"))
  return ClientInfo.make(info)
}
