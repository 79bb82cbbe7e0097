/**
 * What the engine reports about an evaluation, a loaded model and the client (spec/native-protocol.md §13).
 * A field that is absent was not reported: the selector was missing or the backend does not model it. That is
 * different from a reported zero.
 */
import { Schema } from "effect"

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
}) {}

/** What the client negotiated with the engine (the virtual client where there is one). */
export class ClientInfo extends Schema.Class<ClientInfo>("ClientInfo")({
  numAnes: Schema.optional(Schema.Number),
  numCores: Schema.optional(Schema.Number),
  architecture: Schema.optional(Schema.String),
  boardType: Schema.optional(Schema.Number),
  capabilityMask: Schema.optional(Schema.BigIntFromSelf),
  dataInterfaceVersion: Schema.optional(Schema.BigIntFromSelf),
  precompiledBinarySupported: Schema.optional(Schema.Boolean)
}) {}
