/** What to compile: in-memory MIL text with its weight files, or a compiled `.mlmodelc` package on disk. */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidArgumentError } from "./errors.js"

/** The path a single unnamed weight blob gets, as the engine's in-memory path expects (spec/native-protocol.md §4.1). */
export const DEFAULT_WEIGHT_PATH = "@model_path/weights/weight.bin"
/** QOS_CLASS_DEFAULT (0x15): what the engine is asked for when the caller does not say. */
export const DEFAULT_QOS = 21
/** Highest Darwin QoS class value (QOS_CLASS_USER_INTERACTIVE = 0x21). */
export const MAX_QOS = 33
/** perfStatsMask selects up to four counters. */
export const MAX_PERF_STATS_MASK = 15

/** Prefix of a weight path relative to its model's root: the package, the compiler's temp folder, a `.mil`'s folder. */
export const MODEL_PATH_PREFIX = "@model_path/"
/** Diagnostic code of a weight path that names (or leads to) a file outside its model's root. */
export const WEIGHT_PATH_OUTSIDE_MODEL = "weight-path-outside-model"

/**
 * Why `path` cannot name a file inside its model's root, or undefined when it can: weight paths are relative
 * (`@model_path/` names the root), use `/` only, and have no `..`, empty or NUL-bearing parts. Symbolic links are
 * checked where the path is resolved on disk (docs/security.md).
 */
export const weightPathSyntaxProblem = (path: string): string | undefined => {
  if (path.length === 0) return "it is empty"
  if (path.includes("\0")) return "it contains a NUL character"
  if (path.includes("\\")) return "it contains a backslash (weight paths separate folders with '/')"
  const rel = path.startsWith(MODEL_PATH_PREFIX) ? path.slice(MODEL_PATH_PREFIX.length) : path
  // A drive letter makes a path absolute on Windows.
  if (rel.startsWith("/") || /^[A-Za-z]:/.test(rel)) return "it is an absolute path"
  if (rel.length === 0) return "it names no file after @model_path/"
  for (const segment of rel.split("/")) {
    if (segment === "..") return "it has a '..' segment"
    if (segment === "") return "it has an empty segment ('//' or a trailing '/')"
  }
  return undefined
}

/** One weight file of an in-memory MIL program, referenced by `BLOBFILE(path = string("<path>"), ...)`. */
export class WeightFile extends Schema.Class<WeightFile>("WeightFile")({
  path: Schema.String.pipe(Schema.filter((p) => {
    const problem = weightPathSyntaxProblem(p)
    return problem === undefined || `weight path ${JSON.stringify(p)} is not inside the model: ${problem}`
  })),
  bytes: Schema.Uint8ArrayFromSelf
}) {}

const common = {
  /**
   * Darwin QoS class the engine is asked to compile, load and evaluate at (0..33; default 21, QOS_CLASS_DEFAULT). The
   * hardware backend sends 0 (QOS_CLASS_UNSPECIFIED) as 21, as the Go package does (src/native/model.ts
   * `effectiveQos`); the simulator does not model QoS.
   */
  qos: Schema.optionalWith(Schema.Number, { default: () => DEFAULT_QOS }),
  perfStatsMask: Schema.optionalWith(Schema.Number, { default: () => 0 })
}

/** Compile MIL text held in memory (`_ANEInMemoryModel`). */
export class MilCompileOptions extends Schema.TaggedClass<MilCompileOptions>()("mil", {
  text: Schema.String,
  weights: Schema.optionalWith(Schema.Array(WeightFile), { default: () => [] }),
  ...common
}) {}

/** Compile a `.mlmodelc` directory through `_ANEClient` (`_ANEModel`). */
export class PackageCompileOptions extends Schema.TaggedClass<PackageCompileOptions>()("package", {
  path: Schema.String,
  modelKey: Schema.optionalWith(Schema.String, { default: () => "s" }),
  ...common
}) {}

/** Either way of naming a program to compile. */
export type CompileOptions = MilCompileOptions | PackageCompileOptions

type Common = {
  /** Darwin QoS class (0..33, default 21); 0 (QOS_CLASS_UNSPECIFIED) is sent as 21 on the hardware backend. */
  readonly qos?: number
  readonly perfStatsMask?: number
}
type WeightInput = { readonly path: string; readonly bytes: Uint8Array }

/** Constructors and validation for {@link CompileOptions}. */
export const CompileOptions = {
  schema: Schema.Union(MilCompileOptions, PackageCompileOptions),
  /**
   * In-memory MIL. `weights` is a list of named files, or one bare blob that gets the conventional
   * `@model_path/weights/weight.bin` path. Checked when compiled, not here.
   */
  mil: (input: { readonly text: string; readonly weights?: ReadonlyArray<WeightInput> | Uint8Array } & Common) =>
    new MilCompileOptions(
      {
        text: input.text,
        weights: input.weights instanceof Uint8Array
          ? [new WeightFile({ path: DEFAULT_WEIGHT_PATH, bytes: input.weights }, { disableValidation: true })]
          : (input.weights ?? []).map((w) =>
            w instanceof WeightFile ? w : new WeightFile({ path: w.path, bytes: w.bytes }, { disableValidation: true })
          ),
        qos: input.qos ?? DEFAULT_QOS,
        perfStatsMask: input.perfStatsMask ?? 0
      },
      { disableValidation: true }
    ),
  /** A compiled `.mlmodelc` directory; `modelKey` is the key the engine caches it under (default "s"). */
  package: (input: { readonly path: string; readonly modelKey?: string } & Common) =>
    new PackageCompileOptions(
      {
        path: input.path,
        modelKey: input.modelKey ?? "s",
        qos: input.qos ?? DEFAULT_QOS,
        perfStatsMask: input.perfStatsMask ?? 0
      },
      { disableValidation: true }
    ),
  /** Every rule for bad input, as one typed failure naming the field. */
  validate: (options: CompileOptions, op = "Ane.compile"): Effect.Effect<CompileOptions, InvalidArgumentError> => {
    const problem = compileOptionsProblem(options, op)
    return problem ? Effect.fail(problem) : Effect.succeed(options)
  }
}

const bad = (op: string, argument: string, expected: string, actual: string) =>
  new InvalidArgumentError({ op, argument, expected, actual })

/** The first thing wrong with `options`, or undefined. */
export const compileOptionsProblem = (options: CompileOptions, op = "Ane.compile"): InvalidArgumentError | undefined => {
  if (!Number.isInteger(options.qos) || options.qos < 0 || options.qos > MAX_QOS) {
    return bad(op, "qos", `an integer in 0..${MAX_QOS} (Darwin QoS class; 21 is the default)`, String(options.qos))
  }
  if (!Number.isInteger(options.perfStatsMask) || options.perfStatsMask < 0 || options.perfStatsMask > MAX_PERF_STATS_MASK) {
    return bad(op, "perfStatsMask", `an integer in 0..${MAX_PERF_STATS_MASK}`, String(options.perfStatsMask))
  }
  if (options._tag === "package") {
    if (options.path.length === 0) return bad(op, "path", "a .mlmodelc directory path", "an empty string")
    if (options.modelKey.length === 0) return bad(op, "modelKey", "a non-empty key", "an empty string")
    return undefined
  }
  if (typeof options.text !== "string" || options.text.trim().length === 0) {
    return bad(op, "text", "MIL program text", "an empty string")
  }
  const seen = new Set<string>()
  for (let i = 0; i < options.weights.length; i++) {
    const w = options.weights[i]!
    if (typeof w.path !== "string" || w.path.length === 0) {
      return bad(op, `weights[${i}].path`, "a non-empty path such as @model_path/weights/weight.bin", "an empty path")
    }
    const outside = weightPathSyntaxProblem(w.path)
    if (outside !== undefined) {
      return new InvalidArgumentError({
        op, argument: `weights[${i}].path`,
        expected: "a path inside the model, such as @model_path/weights/weight.bin",
        actual: `${JSON.stringify(w.path)}: ${outside}`,
        hint: `${WEIGHT_PATH_OUTSIDE_MODEL}: a weight file may only name files inside its model's folder`
      })
    }
    if (!(w.bytes instanceof Uint8Array)) return bad(op, `weights[${i}].bytes`, "a Uint8Array", typeof w.bytes)
    if (seen.has(w.path)) return bad(op, `weights[${i}].path`, "a path not used by another weight file", `duplicate "${w.path}"`)
    seen.add(w.path)
  }
  return undefined
}
