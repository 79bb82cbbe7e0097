/** `ane check <file.mil | dir.mlmodelc> [--chip X] [--json]`: parse, type-check and ANE-validate, compiler style. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { Diagnostic } from "../schema/Diagnostic.js"
import { analyze, hasErrors } from "../mil/analyze.js"
import { chips } from "../mil/validate.js"
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

/** The `check` subcommand. */
export const command = Command.make(
  "check",
  {
    path: Args.text({ name: "path" }).pipe(Args.withDescription("a .mil file or a .mlmodelc directory")),
    chip: Options.choice("chip", chips).pipe(
      Options.withDescription("chip family whose limits apply (default: the strictest of all)"),
      Options.optional
    ),
    json: Options.boolean("json").pipe(Options.withDescription("print one JSON object instead of text"))
  },
  ({ chip, json, path }) =>
    loadMil("ane check", path).pipe(
      Effect.flatMap(({ file, text }) => {
        const r = analyze(text, { file, ...(Option.isSome(chip) ? { chip: chip.value } : {}) })
        const ok = !hasErrors(r.diagnostics)
        process.exitCode = ok ? 0 : 1
        if (json) return Console.log(JSON.stringify({ ok, diagnostics: jsonOf(r.diagnostics) }))
        const lines = text.split(/\r?\n/)
        const count = (s: string) => r.diagnostics.filter((d) => d.severity === s).length
        const body = r.diagnostics.map((d) => renderDiagnostic(d, lines))
        const summary = `${file}: ${count("error")} error(s), ${count("warning")} warning(s), ${count("info")} note(s)`
        return Console.log([...body, summary].join("\n\n"))
      }),
      Effect.catchAll((e) => {
        process.exitCode = 2
        return json
          ? Console.log(JSON.stringify({ ok: false, error: e.message, diagnostics: [] }))
          : Console.error(e.message)
      })
    )
).pipe(Command.withDescription("Parse, type-check and validate a MIL program against the ANE's rules"))
