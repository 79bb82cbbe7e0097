/**
 * The simulator's front end: MIL text → program + diagnostics, with the ANE rule findings treated per `rules`
 * ("error": they fail the compile, as the engine would; "warn": demoted to warnings and reported; "off": dropped).
 */
import type { Program } from "../mil/ast.js"
import { analyze } from "../mil/analyze.js"
import { Diagnostic } from "../schema/Diagnostic.js"
import type { Chip } from "./layout.js"

/** How ANE rule findings are treated. */
export type Rules = "error" | "warn" | "off"

/** Parsed program (null when it cannot run) and every finding, rules already applied. */
export interface FrontEnd {
  readonly program: Program | null
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/** Applies `rules` to findings of kind "ane". */
export const applyRules = (diagnostics: ReadonlyArray<Diagnostic>, rules: Rules): Array<Diagnostic> => {
  const out: Array<Diagnostic> = []
  for (const d of diagnostics) {
    if (d.kind !== "ane") out.push(d)
    else if (rules === "error") out.push(d)
    else if (rules === "warn") out.push(d.severity === "error" ? new Diagnostic({ ...d, severity: "warning" }) : d)
  }
  return out
}

/** Parses, type-checks and ANE-validates MIL text (src/mil/analyze.ts), rules applied. */
export const frontEnd = (text: string, options: { readonly file?: string; readonly chip: Chip; readonly rules: Rules }): FrontEnd => {
  const r = analyze(text, { ...(options.file !== undefined ? { file: options.file } : {}), chip: options.chip, rules: options.rules })
  return { program: r.program, diagnostics: applyRules(r.diagnostics, options.rules) }
}

/** True when any diagnostic is an error. */
export const hasErrors = (diagnostics: ReadonlyArray<Diagnostic>): boolean => diagnostics.some((d) => d.severity === "error")
