/** Typed errors of effect-ane: every public failure is one of these tagged classes. */
import * as Schema from "effect/Schema"
import { Diagnostic, formatDiagnostic } from "./Diagnostic.js"

const native = {
  op: Schema.String,
  domain: Schema.optional(Schema.String),
  code: Schema.optional(Schema.Number),
  hint: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect)
}

const nativeSuffix = (e: { domain?: string | undefined; code?: number | undefined; hint?: string | undefined }) =>
  (e.domain !== undefined || e.code !== undefined ? ` (${e.domain ?? "native"} ${e.code ?? "?"})` : "") +
  (e.hint ? `: ${e.hint}` : "")

/** The machine has no usable ANE (not macOS, no ANE device, or the private framework would not load). */
export class NoAneError extends Schema.TaggedError<NoAneError>()("NoAneError", {
  ...native,
  reason: Schema.String
}) {
  override get message() {
    return `no ANE hardware available: ${this.reason}` +
      (this.hint ? `. ${this.hint}` : ". Use Ane.layerSimulator or Ane.layerAuto to run on the CPU simulator")
  }
}

/** The program did not compile: MIL diagnostics (syntax, type, ANE rules) and/or a decoded native failure. */
export class CompileError extends Schema.TaggedError<CompileError>()("CompileError", {
  ...native,
  model: Schema.optional(Schema.String),
  diagnostics: Schema.Array(Diagnostic)
}) {
  override get message() {
    const errors = this.diagnostics.filter((d) => d.severity === "error")
    const head = `compile${this.model ? ` of ${this.model}` : ""} failed` + nativeSuffix(this)
    if (errors.length === 0) return head
    const shown = errors.slice(0, 5).map(formatDiagnostic).join("\n  ")
    return `${head}: ${errors.length} error(s)\n  ${shown}` + (errors.length > 5 ? `\n  … ${errors.length - 5} more` : "")
  }
}

/** The per-client compile budget (~119 on macOS before the daemon refuses) is spent. */
export class CompileBudgetExhaustedError extends Schema.TaggedError<CompileBudgetExhaustedError>()(
  "CompileBudgetExhaustedError",
  { ...native, used: Schema.Number, limit: Schema.Number }
) {
  override get message() {
    return `compile budget exhausted: ${this.used} of ${this.limit} compiles used by this client; ` +
      `reuse compiled models (ModelCache) or open a new client`
  }
}

/** The compiled program could not be loaded onto the engine. */
export class ModelLoadError extends Schema.TaggedError<ModelLoadError>()("ModelLoadError", {
  ...native,
  model: Schema.String
}) {
  override get message() {
    return `loading ${this.model} failed` + nativeSuffix(this)
  }
}

/** Mapping a request's IOSurfaces to the engine failed. */
export class MapError extends Schema.TaggedError<MapError>()("MapError", {
  ...native,
  model: Schema.String
}) {
  override get message() {
    return `mapping the surfaces of ${this.model} failed` + nativeSuffix(this)
  }
}

/** An evaluation failed on the engine (or in the simulator's interpreter). */
export class EvalError extends Schema.TaggedError<EvalError>()("EvalError", {
  ...native,
  model: Schema.String
}) {
  override get message() {
    return `evaluation of ${this.model} failed` + nativeSuffix(this)
  }
}

/** The compiled model reports a tensor layout this library cannot address safely. */
export class UnsupportedLayoutError extends Schema.TaggedError<UnsupportedLayoutError>()("UnsupportedLayoutError", {
  ...native,
  tensor: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `unsupported tensor layout: ${this.tensor}: ${this.reason}`
  }
}

/** The private framework on this OS does not answer a selector we need. */
export class UnsupportedSelectorError extends Schema.TaggedError<UnsupportedSelectorError>()(
  "UnsupportedSelectorError",
  { ...native, className: Schema.String, selector: Schema.String }
) {
  override get message() {
    return `unsupported selector: ${this.className} does not respond to ${this.selector}` +
      (this.hint ? `: ${this.hint}` : "")
  }
}

/** The virtualised ANE client (for VMs) is not available. */
export class VirtualClientUnavailableError extends Schema.TaggedError<VirtualClientUnavailableError>()(
  "VirtualClientUnavailableError",
  { ...native }
) {
  override get message() {
    return `virtual ANE client unavailable` + nativeSuffix(this)
  }
}

/** Shared-event evaluation was asked of an in-memory MIL model on a backend that only supports packages. */
export class SharedEventRequiresPackageError extends Schema.TaggedError<SharedEventRequiresPackageError>()(
  "SharedEventRequiresPackageError",
  {
    ...native,
    model: Schema.String,
    /** What needs the package when it is not shared-event evaluation ("pipelined I/O", "chaining"). */
    feature: Schema.optional(Schema.String)
  }
) {
  override get message() {
    return `${this.feature ?? "shared events"} require${this.feature === undefined ? "" : "s"} a package (.mlmodelc) ` +
      `model; ${this.model} was compiled from in-memory MIL. Compile it with CompileOptions.package`
  }
}

/** The machine has no Metal device (not macOS, no GPU, or Metal.framework would not load). */
export class NoMetalError extends Schema.TaggedError<NoMetalError>()("NoMetalError", {
  ...native,
  reason: Schema.String
}) {
  override get message() {
    return `no Metal device available: ${this.reason}` + (this.hint ? `. ${this.hint}` : "")
  }
}

/** A GPU-side operation failed: a shared-event twin, a buffer, a kernel's compile or a dispatch. */
export class MetalError extends Schema.TaggedError<MetalError>()("MetalError", {
  ...native,
  /** The object or kernel concerned, when there is one. */
  resource: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.op} failed` + (this.resource ? ` for ${this.resource}` : "") + nativeSuffix(this)
  }
}

/** A caller passed a bad value: wrong length, index out of range, bad option. Nothing was touched. */
export class InvalidArgumentError extends Schema.TaggedError<InvalidArgumentError>()("InvalidArgumentError", {
  op: Schema.String,
  argument: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
  hint: Schema.optional(Schema.String)
}) {
  override get message() {
    return `${this.op}: invalid ${this.argument}: expected ${this.expected}, got ${this.actual}` +
      (this.hint ? ` (${this.hint})` : "")
  }
}

/** The resource was released (its scope closed) before this call. */
export class ClosedError extends Schema.TaggedError<ClosedError>()("ClosedError", {
  op: Schema.String,
  resource: Schema.String
}) {
  override get message() {
    return `${this.op}: ${this.resource} is closed; use it only inside the scope that created it`
  }
}

/** An ONNX file could not be imported: unreadable or malformed protobuf, an unsupported op, an unfixed shape. */
export class ImportError extends Schema.TaggedError<ImportError>()("ImportError", {
  op: Schema.String,
  /** The ONNX file (or "<memory>"). */
  file: Schema.String,
  /** The ONNX node the problem is in, when there is one. */
  node: Schema.optional(Schema.String),
  /** Its op type (and domain), when there is a node. */
  opType: Schema.optional(Schema.String),
  reason: Schema.String,
  hint: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    const where = this.node !== undefined ? ` at node "${this.node}"${this.opType ? ` (${this.opType})` : ""}` : ""
    return `import of ${this.file} failed${where}: ${this.reason}` + (this.hint ? ` (${this.hint})` : "")
  }
}

/** Every typed error effect-ane can fail with. */
export type AneError =
  | NoAneError
  | CompileError
  | CompileBudgetExhaustedError
  | ModelLoadError
  | MapError
  | EvalError
  | UnsupportedLayoutError
  | UnsupportedSelectorError
  | VirtualClientUnavailableError
  | SharedEventRequiresPackageError
  | InvalidArgumentError
  | ClosedError
  | ImportError
  | NoMetalError
  | MetalError

/** Failures of a compile call (MIL or package). */
export type CompileFailure =
  | CompileError
  | CompileBudgetExhaustedError
  | ModelLoadError
  | MapError
  | UnsupportedLayoutError
  | InvalidArgumentError

const tags: ReadonlySet<string> = new Set([
  "NoAneError", "CompileError", "CompileBudgetExhaustedError", "ModelLoadError", "MapError", "EvalError",
  "UnsupportedLayoutError", "UnsupportedSelectorError", "VirtualClientUnavailableError",
  "SharedEventRequiresPackageError", "InvalidArgumentError", "ClosedError", "ImportError", "NoMetalError", "MetalError"
])

/** True for any error this library defines. */
export const isAneError = (u: unknown): u is AneError =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" && tags.has(u._tag) &&
  u instanceof Error

/** Schema of the whole union, for serialising errors across processes. */
export const AneErrorSchema = Schema.Union(
  NoAneError, CompileError, CompileBudgetExhaustedError, ModelLoadError, MapError, EvalError, UnsupportedLayoutError,
  UnsupportedSelectorError, VirtualClientUnavailableError, SharedEventRequiresPackageError, InvalidArgumentError,
  ClosedError, ImportError, NoMetalError, MetalError
)
