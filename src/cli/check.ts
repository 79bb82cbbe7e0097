/**
 * `ane check <file.mil | dir.mlmodelc> [--chip X] [--json]`: parse, type-check and ANE-validate, compiler style, and
 * check every BLOBFILE against its weight file (present, well-formed, the declared dtype and size).
 */
import { realpath } from "node:fs/promises"
import { isAbsolute, join, relative, resolve } from "node:path"
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { Program } from "../mil/ast.js"
import { analyze, hasErrors } from "../mil/analyze.js"
import { blobReferences, checkProgramBlobs } from "../mil/blob.js"
import { chips } from "../mil/validate.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import { CommandExit, ExitCode, reported } from "./failure.js"
import { MAX_WEIGHT_BYTES, readRegularFile } from "./files.js"
import { loadProgram } from "./run.js"
import { loadMil } from "./source.js"

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

/**
 * The weight files of a package's BLOBFILEs, read from under its folder: a path that leaves the folder (`..`, an
 * absolute path, a symlink out) is a diagnostic, not a read; a missing file is left for the blob checks to report.
 */
const packageWeights = (root: string, program: Program, file: string) =>
  Effect.gen(function*() {
    const files: Array<{ path: string; bytes: Uint8Array }> = []
    const problems: Array<Diagnostic> = []
    const realRoot = yield* Effect.promise(() => realpath(root).catch(() => resolve(root)))
    const inside = (p: string, base: string) => {
      const r = relative(base, p)
      return r !== "" && !r.startsWith("..") && !isAbsolute(r)
    }
    for (const ref of blobReferences(program)) {
      if (files.some((f) => f.path === ref.path)) continue
      const rel = ref.path.startsWith("@model_path/") ? ref.path.slice("@model_path/".length) : ref.path
      const full = resolve(root, rel)
      const real = yield* Effect.promise(() => realpath(full).catch(() => undefined))
      if (isAbsolute(rel) || rel.includes("\0") || !inside(full, resolve(root)) || (real !== undefined && !inside(real, realRoot))) {
        problems.push(new Diagnostic({
          kind: "type", severity: "error", code: "weight-path-outside-model", line: ref.pos.line, col: ref.pos.col, file,
          message: `weight path "${ref.path}" leaves the package ${root}`,
          hint: "a BLOBFILE path names a file inside the package, such as @model_path/weights/weight.bin"
        }))
        continue
      }
      if (real === undefined) continue
      const bytes = yield* readRegularFile(full, {
        op: "ane check", argument: `weight file of ${ref.path}`, expected: "a regular weight file", maxBytes: MAX_WEIGHT_BYTES
      })
      files.push({ path: ref.path, bytes })
    }
    return { files: files as WeightFiles, problems }
  })

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
          ? yield* packageWeights(path, r.program, file)
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
