/** Data and error schemas shared by every layer of effect-ane. */
export * from "./CompileOptions.js"
export * from "./CompileStats.js"
export * from "./DeviceInfo.js"
export * from "./Diagnostic.js"
export * from "./errors.js"
export * from "./SharedEventEvalOptions.js"
export * from "./TensorLayout.js"
export * from "./Telemetry.js"
