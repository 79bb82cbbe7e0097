/**
 * `ane check <file.mil | dir.mlmodelc> [--chip X] [--json]`: parse, type-check and ANE-validate, compiler style, and
 * check every BLOBFILE against its weight file (present, well-formed, the declared dtype and size).
 */
import { join } from "node:path"
import { Args, Command, Options } from "./args.js"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { analyze, hasErrors } from "../mil/analyze.js"
import { blobReferences, checkProgramBlobs } from "../mil/blob.js"
import { chips } from "../mil/validate.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { CommandExit, ExitCode, reported } from "./failure.js"
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

const jsonOf = (ds: ReadonlyArray<Diagnostic>) =>
  ds.map((d) => ({
    kind: d.kind,
    severity: d.severity,
    code: d.code,
    message: d.message,
    line: d.line,
    col: d.col,
    ...(d.hint !== undefined ? { hint: d.hint } : {})
  }))

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
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object instead of text (default: off)"))
  },
  ({ chip, json, path, weights }) =>
    Effect.gen(function*() {
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
      const diagnostics = [...r.diagnostics, ...blobs].sort((a, b) => a.line - b.line || a.col - b.col)
      const ok = !hasErrors(diagnostics)
      if (json) yield* Console.log(JSON.stringify({ ok, diagnostics: jsonOf(diagnostics) }))
      else {
        const lines = text.split(/\r?\n/)
        const count = (s: string) => diagnostics.filter((d) => d.severity === s).length
        const body = diagnostics.map((d) => renderDiagnostic(d, lines))
        const summary = `${file}: ${count("error")} error(s), ${count("warning")} warning(s), ${count("info")} note(s)`
        yield* Console.log([...body, summary].join("\n\n"))
      }
      if (!ok) return yield* Effect.fail(new CommandExit({ code: ExitCode.failed }))
    }).pipe(reported("check", json, { file: path }))
).pipe(Command.withDescription("Parse, type-check and validate a MIL program against the ANE's rules, and its weight files"))
