/** What the engine (or the simulator standing in for it) reports about itself. */
import * as Schema from "effect/Schema"

/** Which implementation of the Backend port answers: the real engine, the CPU simulator, or a test stub. */
export const BackendKind = Schema.Literal("hardware", "simulator", "stub")
export type BackendKind = typeof BackendKind.Type

/** `_ANEDeviceInfo` class-method answers (spec/native-protocol.md §2) plus the backend that produced them. */
export class DeviceInfo extends Schema.Class<DeviceInfo>("DeviceInfo")({
  hasAne: Schema.Boolean,
  numCores: Schema.Number,
  architecture: Schema.String,
  product: Schema.String,
  buildVersion: Schema.String,
  isVm: Schema.Boolean,
  numAnes: Schema.Number,
  subType: Schema.String,
  boardType: Schema.Number,
  internalBuild: Schema.Boolean,
  backend: BackendKind
}) {}
