/** Options of an evaluation synchronised through shared events (spec/native-protocol.md §9.2). */
import * as Schema from "effect/Schema"

/** Flags passed to the engine with a shared-event evaluation. */
export class SharedEventEvalOptions extends Schema.Class<SharedEventEvalOptions>("SharedEventEvalOptions")({
  /** Let shared events replace I/O fences (`kANEFDisableIOFencesUseSharedEventsKey`). */
  disableIoFencesUseSharedEvents: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Firmware-to-firmware signalling (`kANEFEnableFWToFWSignal`); keep false for ANE→Metal on physical hosts. */
  enableFwToFwSignal: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {}
