/**
 * `ane check <file.mil | dir.mlmodelc | model.onnx> [--chip X] [--json]`: parse, type-check and ANE-validate, compiler
 * style, and check every BLOBFILE against its weight file (present, well-formed, the declared dtype and size). An ONNX
 * model is imported in memory first; its findings name the ONNX node they came from.
 */
import { join } from "node:path"
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { analyze, hasErrors } from "../mil/analyze.js"
import { blobReferences, checkProgramBlobs } from "../mil/blob.js"
import { chips } from "../mil/validate.js"
import type * as Onnx from "../onnx/Onnx.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { InvalidArgumentError } from "../schema/errors.js"
import { CommandExit, ExitCode, reported } from "./failure.js"
import { type ImportFlags, importModel, importOptions, isOnnxPath, traceDiagnostic } from "./import.js"
import * as CommonOptions from "./options.js"
import { loadProgram } from "./run.js"
import { loadMil } from "./source.js"
import { packageWeights } from "./weights.js"

/** One diagnostic with its source line and a caret under the column. */
export const renderDiagnostic = (d: Diagnostic, lines: ReadonlyArray<string>): string => {
  const head = `${d.file ?? "<mil>"}:${d.line}:${d.col}: ${d.severity} ${d.code}: ${d.message}`
  const src = lines[d.line - 1]
  const out = [head]
  if (src !== undefined) {
    const gutter = String(d.line).length
    const shown = src.replace(/\t/g, " ")
    out.push(`  ${d.line} | ${shown}`, `  ${" ".repeat(gutter)} | ${" ".repeat(Math.max(0, d.col - 1))}^`)
  }
  if (d.hint) out.push(`  = hint: ${d.hint}`)
  return out.join("\n")
}

const jsonOf = (ds: ReadonlyArray<Diagnostic>, nodes: ReadonlyMap<Diagnostic, string>) =>
  ds.map((d) => ({
    kind: d.kind,
    severity: d.severity,
    code: d.code,
    message: d.message,
    line: d.line,
    col: d.col,
    ...(d.hint !== undefined ? { hint: d.hint } : {}),
    ...(nodes.has(d) ? { onnxNode: nodes.get(d)! } : {})
  }))

const NODE_SUFFIX = / \(ONNX node "(.*)"\)$/

/** The diagnostics of an imported program, each traced to its ONNX node (kept apart too, for `--json`). */
const traced = (imported: Onnx.Imported, model: string, ds: ReadonlyArray<Diagnostic>) => {
  const nodes = new Map<Diagnostic, string>()
  const out = ds.map((d) => {
    const t = traceDiagnostic(imported, model, d)
    const node = t.message.length > d.message.length ? NODE_SUFFIX.exec(t.message)?.[1] : undefined
    if (node !== undefined) nodes.set(t, node)
    return t
  })
  return { diagnostics: out, nodes }
}

/** Import options are refused on a MIL program or package rather than ignored. */
const refuseImportFlags = (path: string, flags: ImportFlags): InvalidArgumentError | undefined => {
  const given = flags.shape.length > 0 ? "--shape" : flags.inputValue.length > 0 ? "--input-value" : flags.fp32 ? "--fp32" : undefined
  return given === undefined ? undefined : new InvalidArgumentError({
    op: "ane check", argument: given, expected: "an .onnx program", actual: path, hint: `${given} applies to ONNX imports only`
  })
}

/** An `.onnx` model: imported, then its program analyzed and its BLOBFILEs checked against the imported weights. */
const checkOnnx = (path: string, flags: ImportFlags, chip: Option.Option<(typeof chips)[number]>) =>
  Effect.gen(function*() {
    const imported = yield* importModel("ane check", path, flags)
    const r = analyze(imported.text, Option.isSome(chip) ? { chip: chip.value } : {})
    const blobs = r.program !== null ? checkProgramBlobs(r.program, imported.weights) : []
    return { text: imported.text, file: `${path} (imported MIL)`, ...traced(imported, path, [...r.diagnostics, ...blobs]) }
  })

type WeightFiles = ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>

/** Where the CLI looks for a missing weight file, as a hint. */
const missingHint = (kind: "file" | "package", path: string, blob: string) => {
  const rel = blob.startsWith("@model_path/") ? blob.slice("@model_path/".length) : blob
  return kind === "package" ? `expected at ${join(path, rel)}` : `put it beside the program (${rel}) or pass --weights`
}

/** The `check` subcommand. */
export const command = Command.make(
  "check",
  {
    path: Args.text({ name: "path" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
    weights: Options.text("weights").pipe(
      Options.withDescription("weight file for the program's BLOBFILE references (default: found beside the .mil)"),
      Options.optional
    ),
    chip: Options.choice("chip", chips).pipe(
      Options.withDescription("chip family whose limits apply (default: the strictest of all)"),
      Options.optional
    ),
    json: CommonOptions.json,
    ...importOptions
  },
  ({ chip, json, path, weights, ...flags }) =>
    Effect.gen(function*() {
      if (isOnnxPath(path)) {
        if (Option.isSome(weights)) {
          return yield* Effect.fail(new InvalidArgumentError({
            op: "ane check", argument: "--weights", expected: "no weight file with an .onnx program (its weights come from the import)",
            actual: weights.value
          }))
        }
        const c = yield* checkOnnx(path, flags, chip)
        return yield* report(c.file, c.text, c.diagnostics, c.nodes, json)
      }
      const refused = refuseImportFlags(path, flags)
      if (refused !== undefined) return yield* Effect.fail(refused)
      const { file, text, kind } = yield* loadMil("ane check", path)
      const r = analyze(text, { file, ...(Option.isSome(chip) ? { chip: chip.value } : {}) })
      let blobs: ReadonlyArray<Diagnostic> = []
      if (r.program !== null && blobReferences(r.program).length > 0) {
        const found = kind === "package"
          ? yield* packageWeights("ane check", path, r.program, file)
          : yield* loadProgram("ane check", path, weights).pipe(
            Effect.map((req) => ({ files: req.options._tag === "mil" ? req.options.weights : [], problems: [] })),
            // A weight path the loader refuses (outside the folder) is a finding of its own, not a failed check.
            Effect.catchTag("CompileError", (e) => Effect.succeed({ files: [], problems: e.diagnostics }))
          )
        const files: WeightFiles = found.files
        blobs = found.problems.length > 0 ? found.problems : [...checkProgramBlobs(r.program, files, file).map((d) =>
          d.code === "blob-missing-file" && /"(.*)"/.test(d.message)
            ? new Diagnostic({ ...d, hint: missingHint(kind, path, /"(.*)"/.exec(d.message)![1]!) })
            : d
        )]
      }
      return yield* report(file, text, [...r.diagnostics, ...blobs], new Map(), json)
    }).pipe(reported("check", json, { file: path }))
).pipe(Command.withDescription(
  "Parse, type-check and validate a MIL program (or an .onnx model, imported first) against the ANE's rules, and its " +
  "weight files"
))

/** Prints the findings, sorted by position; any error ends the command with exit 1. */
const report = (
  file: string, text: string, found: ReadonlyArray<Diagnostic>, nodes: ReadonlyMap<Diagnostic, string>, json: boolean
) =>
  Effect.gen(function*() {
    const diagnostics = [...found].sort((a, b) => a.line - b.line || a.col - b.col)
    const ok = !hasErrors(diagnostics)
    if (json) yield* Console.log(JSON.stringify({ ok, diagnostics: jsonOf(diagnostics, nodes) }))
    else {
      const lines = text.split(/\r?\n/)
      const count = (s: string) => diagnostics.filter((d) => d.severity === s).length
      const body = diagnostics.map((d) => renderDiagnostic(d, lines))
      const summary = `${file}: ${count("error")} error(s), ${count("warning")} warning(s), ${count("info")} note(s)`
      yield* Console.log([...body, summary].join("\n\n"))
    }
    if (!ok) return yield* Effect.fail(new CommandExit({ code: ExitCode.failed }))
  })
