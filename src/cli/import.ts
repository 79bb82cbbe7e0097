/**
 * `ane import <model.onnx> --out <dir>`: imports an ONNX model as a package folder (`model.mil`, `weights/weight.bin`,
 * `metadata.json`) and prints the ANE rule report, each finding with the ONNX node it came from. Also the in-memory
 * import `ane run`, `ane check` and `ane inspect` use for an `.onnx` path.
 */
import { lstat, readdir, stat } from "node:fs/promises"
import { join } from "node:path"
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { chips } from "../mil/validate.js"
import * as Onnx from "../onnx/Onnx.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { ImportError, InvalidArgumentError } from "../schema/errors.js"
import { reported } from "./failure.js"
import * as CommonOptions from "./options.js"
import { createOutputDir, kindOf, type OutputPlan, planOutputDir, reasonOf, removeCreatedDirs } from "./files.js"

/** An `.onnx` path (by its extension, any case): `ane run`, `check` and `inspect` import it first. */
export const isOnnxPath = (path: string): boolean => /\.onnx$/i.test(path)

/** The import options every command taking an `.onnx` path accepts. */
export interface ImportFlags {
  /** `name=1,576` (repeatable): fixed shapes of inputs with symbolic dims. */
  readonly shape: ReadonlyArray<string>
  /** `name=16000` or `name=1,2,3` (repeatable): inputs fixed to values at import. */
  readonly inputValue: ReadonlyArray<string>
  /** Program and weights in fp32 instead of fp16. */
  readonly fp32: boolean
}

/** The package files `ane import` writes, relative to `--out`. */
export const PACKAGE_FILES = ["model.mil", "weights/weight.bin", "metadata.json"] as const

const invalid = (op: string, argument: string, expected: string, actual: string, hint?: string) =>
  new InvalidArgumentError({ op, argument, expected, actual, ...(hint !== undefined ? { hint } : {}) })

/**
 * Reads `name=v1,v2,…` specs into a record: `--shape` takes positive integer dims, `--input-value` finite numbers.
 * The name is everything before the last `=` (ONNX names may hold any character); a name given twice is refused.
 */
export const parseNamedLists = (
  op: string,
  argument: "--shape" | "--input-value",
  specs: ReadonlyArray<string>
): Record<string, ReadonlyArray<number>> | InvalidArgumentError => {
  const dims = argument === "--shape"
  const form = dims ? "name=d1,d2,… with positive integer dims" : "name=v1,v2,… with finite numbers"
  const out: Record<string, ReadonlyArray<number>> = {}
  for (const spec of specs) {
    const eq = spec.lastIndexOf("=")
    if (eq <= 0) return invalid(op, argument, form, spec === "" ? "an empty value" : spec)
    const name = spec.slice(0, eq)
    const text = spec.slice(eq + 1)
    const values = text.split(",").map((s) => s.trim())
    const numbers = values.map(Number)
    const bad = values.findIndex((s, i) =>
      s === "" || !Number.isFinite(numbers[i]!) || (dims && (!Number.isSafeInteger(numbers[i]!) || numbers[i]! < 1)))
    if (bad >= 0) return invalid(op, `${argument} ${name}`, form, `"${text}"`)
    if (Object.hasOwn(out, name)) return invalid(op, argument, "each input named once", `${name} twice`)
    out[name] = numbers
  }
  return out
}

// Import failures whose fix is an argument: a usage error (exit 2), said in the CLI's words.
const SYMBOLIC = /^input "(.*)" has a symbolic dimension (.*) at axis (\d+)$/
const NO_SHAPE = /^input "(.*)" has no declared shape$/
const BAD_SHAPE = /^the shape (given for|\[.*\] of) input "/
const BAD_VALUE = /^the value given for input "/

/** An import hint in the CLI's words (the API spellings dropped). */
const cliHint = (hint: string | undefined): string | undefined =>
  hint?.replace(/\s*\(API: .*\)$/, "").replace("(shapes or inputValues)", "(--shape or --input-value)")

/** An ImportError as the CLI reports it: argument problems become usage errors naming the option. */
export const cliImportError = (op: string, e: ImportError): ImportError | InvalidArgumentError => {
  const hint = cliHint(e.hint)
  const symbolic = SYMBOLIC.exec(e.reason)
  if (symbolic !== null) {
    const [, name, label, axis] = symbolic
    const what = label === "unknown" ? "has no fixed size" : `is the symbolic dimension ${label}`
    return invalid(op, "--shape", `a fixed shape for input "${name}"`, `none (its axis ${axis} ${what})`, hint)
  }
  const missing = NO_SHAPE.exec(e.reason)
  if (missing !== null) return invalid(op, "--shape", `a fixed shape for input "${missing[1]}"`, "none (the model declares no shape)", hint)
  if (BAD_SHAPE.test(e.reason)) return invalid(op, "--shape", "a shape that fits the model's input", e.reason, hint)
  if (BAD_VALUE.test(e.reason)) return invalid(op, "--input-value", "a value that fits the model's input", e.reason, hint)
  if (hint === e.hint) return e
  return new ImportError({
    op: e.op, file: e.file, reason: e.reason, ...(e.node !== undefined ? { node: e.node } : {}),
    ...(e.opType !== undefined ? { opType: e.opType } : {}), ...(hint !== undefined ? { hint } : {}),
    ...(e.cause !== undefined ? { cause: e.cause } : {})
  })
}

/** Checks the model path: a regular file the importer may read. */
const checkModelPath = (op: string, path: string): Effect.Effect<void, InvalidArgumentError> => {
  const fail = (actual: string) => invalid(op, "model", "a regular .onnx file", actual)
  if (path.length === 0) return Effect.fail(fail("an empty path"))
  if (path.includes("\0")) return Effect.fail(fail("a path containing a NUL byte"))
  return Effect.tryPromise({
    try: async () => {
      const s = await stat(path).catch((e: unknown) => fail(`${path} (${reasonOf(e)})`))
      if (s instanceof InvalidArgumentError) return s
      if (!s.isFile()) return fail(`${path} (${kindOf(s)})`)
      if (s.size > Onnx.MAX_MODEL_BYTES) return fail(`${path} (${s.size} bytes; at most ${Onnx.MAX_MODEL_BYTES} is read)`)
      return undefined
    },
    catch: (e) => fail(`${path} (${reasonOf(e)})`)
  }).pipe(Effect.flatMap((r) => (r instanceof InvalidArgumentError ? Effect.fail(r) : Effect.void)))
}

/**
 * Imports an `.onnx` file in memory with the CLI's options: the path is checked first, argument problems are usage
 * errors, and a `--shape` or `--input-value` naming no input of the model is refused (a typo would otherwise be ignored).
 */
export const importModel = (op: string, path: string, flags: ImportFlags) =>
  Effect.gen(function*() {
    const shapes = parseNamedLists(op, "--shape", flags.shape)
    if (shapes instanceof InvalidArgumentError) return yield* Effect.fail(shapes)
    const inputValues = parseNamedLists(op, "--input-value", flags.inputValue)
    if (inputValues instanceof InvalidArgumentError) return yield* Effect.fail(inputValues)
    yield* checkModelPath(op, path)
    const imported = yield* Onnx.importFile(path, { shapes, inputValues, precision: flags.fp32 ? "fp32" : "fp16" }).pipe(
      Effect.mapError((e) => cliImportError(op, e))
    )
    const known = [...imported.metadata.inputs.map((i) => i.onnxName), ...Object.keys(imported.metadata.fixedInputs)]
    for (const [argument, given] of [["--shape", shapes], ["--input-value", inputValues]] as const) {
      for (const name of Object.keys(given)) {
        if (!known.includes(name)) return yield* Effect.fail(invalid(op, argument, `one of the model's inputs (${known.join(", ")})`, name))
      }
    }
    return imported
  })

// The result name of the op on a MIL line (`tensor<…> name = op(…)`), as Onnx.ruleReport reads it.
const RESULT = /^\s*[^=]*?\s([A-Za-z_][A-Za-z0-9_]*)(?:,[^=]*)?\s=/

/**
 * A diagnostic of an imported program as the CLI prints it: attributed to `<model> (imported MIL)`, since its lines
 * are those of the program `ane import` writes, and ending with the ONNX node its op came from.
 */
export const traceDiagnostic = (imported: Onnx.Imported, model: string, d: Diagnostic): Diagnostic => {
  const milOp = RESULT.exec(imported.text.split("\n")[d.line - 1] ?? "")?.[1]
  const node = milOp === undefined ? undefined
    : imported.nodeOrigins[milOp] ?? imported.metadata.outputs.find((o) => o.milName === milOp)?.onnxName
  return new Diagnostic({
    ...d, file: `${model} (imported MIL)`, message: d.message + (node !== undefined ? ` (ONNX node "${node}")` : "")
  })
}

/** The import options as command-line options, shared by `import`, `run`, `check` and `inspect`. */
export const importOptions = {
  shape: Options.text("shape").pipe(
    Options.withDescription("ONNX models: name=1,576 fixes the shape of an input with symbolic dims (repeatable)"),
    Options.repeated
  ),
  inputValue: Options.text("input-value").pipe(
    Options.withDescription("ONNX models: name=16000 fixes an input to a value at import, so it leaves the program " +
      "(e.g. a sample rate that selects a branch; repeatable)"),
    Options.repeated
  ),
  fp32: Options.boolean("fp32").pipe(
    Options.withDescription("ONNX models: program and weights in fp32 instead of fp16 (default: off)")
  )
}

/** Checks `--out` before any work: creatable, and empty unless `--force` (then only the package's own files are replaced). */
const planPackageDir = (op: string, dir: string, force: boolean): Effect.Effect<OutputPlan, InvalidArgumentError> =>
  Effect.gen(function*() {
    const plan = yield* planOutputDir(op, dir).pipe(
      Effect.mapError((e) => invalid(op, "--out", e.expected, e.actual, e.hint))
    )
    if (plan.missing.length > 0) return plan
    const problem = yield* Effect.promise(async () => {
      const entries = await readdir(dir).catch((e: unknown) => e)
      if (!Array.isArray(entries)) return invalid(op, "--out", "a readable directory", `${dir} (${reasonOf(entries)})`)
      if (entries.length === 0) return undefined
      if (!force) {
        return invalid(op, "--out", "an empty or new directory", `${dir} (holds ${entries.length} entries)`,
          `--force writes the package into it, replacing ${PACKAGE_FILES.join(", ")}`)
      }
      // Replaced files must be regular files (or absent), and weights/ a real directory: nothing is written through a link.
      const weights = await lstat(join(dir, "weights")).catch(() => undefined)
      if (weights !== undefined && !weights.isDirectory()) {
        return invalid(op, "--out", "a package directory whose weights/ is a directory",
          `${join(dir, "weights")} (${weights.isSymbolicLink() ? "a symbolic link" : kindOf(weights)})`)
      }
      for (const f of PACKAGE_FILES) {
        const s = await lstat(join(dir, f)).catch(() => undefined)
        if (s !== undefined && !s.isFile()) {
          return invalid(op, "--out", "a package directory whose files can be replaced",
            `${join(dir, f)} (${s.isSymbolicLink() ? "a symbolic link" : kindOf(s)})`)
        }
      }
      return undefined
    })
    if (problem !== undefined) return yield* Effect.fail(problem)
    return plan
  })

const shapeText = (s: ReadonlyArray<number>) => `[${s.join(", ")}]`

const ioText = (io: Onnx.IoSpec) =>
  `${io.milName} ${shapeText(io.shape)} ${io.dtype}` + (io.milName !== io.onnxName ? ` (ONNX "${io.onnxName}")` : "")

/** Parsed command-line options of `ane import`. */
export interface ImportCommandOptions extends ImportFlags {
  readonly model: string
  readonly out: string
  readonly force: boolean
  readonly chip: Option.Option<(typeof chips)[number]>
  readonly json: boolean
}

/** The whole command as an Effect (exported for tests): fails with typed errors, prints nothing on failure. */
export const importCommand = (o: ImportCommandOptions) =>
  Effect.gen(function*() {
    const op = "ane import"
    const plan = yield* planPackageDir(op, o.out, o.force)
    const imported = yield* importModel(op, o.model, o)
    yield* createOutputDir(op, plan).pipe(Effect.mapError((e) => invalid(op, "--out", e.expected, e.actual)))
    yield* Onnx.writePackage(imported, o.out).pipe(
      Effect.mapError((e) => invalid(op, "--out", "a directory the package can be written to", e.reason)),
      Effect.onError(() => removeCreatedDirs(plan))
    )
    const findings = Onnx.ruleReport(imported, Option.isSome(o.chip) ? { chip: o.chip.value } : {})
    const count = (s: string) => findings.filter((f) => f.diagnostic.severity === s).length
    const files = PACKAGE_FILES.filter((f) => f !== "weights/weight.bin" || imported.weights.length > 0)
    const { metadata } = imported
    if (o.json) {
      yield* Console.log(JSON.stringify({
        ok: true,
        model: o.model,
        out: o.out,
        files: files.map((f) => join(o.out, f)),
        precision: metadata.precision,
        inputs: metadata.inputs,
        outputs: metadata.outputs,
        fixedInputs: metadata.fixedInputs,
        chip: Option.getOrNull(o.chip),
        errors: count("error"),
        warnings: count("warning"),
        findings: findings.map((f) => ({
          severity: f.diagnostic.severity,
          code: f.diagnostic.code,
          line: f.diagnostic.line,
          message: f.diagnostic.message,
          ...(f.milOp !== undefined ? { milOp: f.milOp } : {}),
          ...(f.onnxNode !== undefined ? { onnxNode: f.onnxNode } : {})
        }))
      }))
      return
    }
    const fixed = Object.entries(metadata.fixedInputs).map(([k, v]) => `${k} = ${v.join(", ")}`)
    const limits = Option.isSome(o.chip) ? `${o.chip.value} limits` : "the strictest limits of every chip"
    const lines = [
      `${o.model} → ${o.out} (${files.join(", ")}), ${metadata.precision}`,
      `  inputs:  ${metadata.inputs.map(ioText).join(", ")}` + (fixed.length > 0 ? `; fixed: ${fixed.join(", ")}` : ""),
      `  outputs: ${metadata.outputs.map(ioText).join(", ")}`,
      `ANE rule report (${limits}): ${count("error")} error(s), ${count("warning")} warning(s)` +
        (count("error") > 0 ? "; errors are what the engine will refuse, each with the ONNX node it came from" : ""),
      ...Onnx.formatRuleReport(findings).split("\n").filter((l) => l !== "").map((l) => `  ${l}`)
    ]
    yield* Console.log(lines.join("\n"))
  })

/** The `import` subcommand. */
export const command = Command.make(
  "import",
  {
    model: Args.text({ name: "model" }).pipe(Args.withDescription("an .onnx file")),
    out: Options.text("out").pipe(
      Options.withDescription("package directory to write: model.mil, weights/weight.bin, metadata.json (created if " +
        "missing; must be empty unless --force)")
    ),
    ...importOptions,
    force: Options.boolean("force").pipe(
      Options.withDescription("write into a non-empty --out, replacing the package's files and leaving others (default: off)")
    ),
    chip: Options.choice("chip", chips).pipe(
      Options.withDescription("chip family whose limits the rule report applies (default: the strictest of all)"),
      Options.optional
    ),
    json: CommonOptions.json
  },
  (o) => importCommand(o).pipe(reported("import", o.json, { file: o.model }))
).pipe(Command.withDescription(
  "Import an ONNX model as a MIL package and report, per ONNX node, what the engine's rules refuse " +
  "(rule findings do not fail the import)"
))
