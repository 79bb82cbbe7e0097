/** Parse, type-check and ANE-validate MIL text in one call (what a compile runs before anything else). */
import { Diagnostic } from "../schema/Diagnostic.js"
import type { Program } from "./ast.js"
import { check } from "./check.js"
import type { CheckResult } from "./check.js"
import { parse } from "./parser.js"
import type { Chip } from "./validate.js"
import { validate } from "./validate.js"

/** Options of {@link analyze}. */
export interface AnalyzeOptions {
  readonly file?: string
  readonly chip?: Chip
  /** ANE rules: `"error"` as the rules say (default), `"warn"` downgrades their errors to warnings, `"off"` skips them. */
  readonly rules?: "error" | "warn" | "off"
}

/** What {@link analyze} returns; `check` is null when the text did not parse. */
export interface AnalyzeResult {
  readonly program: Program | null
  readonly check: CheckResult | null
  /** Syntax, type and ANE diagnostics together, sorted by position. */
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/** True when any diagnostic is an error. */
export const hasErrors = (diagnostics: ReadonlyArray<Diagnostic>): boolean =>
  diagnostics.some((d) => d.severity === "error")

/** Parses, checks and validates MIL text; never throws. */
export const analyze = (text: string, options: AnalyzeOptions = {}): AnalyzeResult => {
  const file = options.file !== undefined ? { file: options.file } : {}
  const parsed = parse(text, file)
  if (parsed.program === null) return { program: null, check: null, diagnostics: parsed.diagnostics }
  const program = parsed.program
  const checked = check(program, file)
  let ane: ReadonlyArray<Diagnostic> = []
  if (options.rules !== "off") {
    ane = validate(program, { ...file, checked, ...(options.chip !== undefined ? { chip: options.chip } : {}) })
    if (options.rules === "warn") {
      ane = ane.map((d) => (d.severity === "error" ? new Diagnostic({ ...d, severity: "warning" }) : d))
    }
  }
  const diagnostics = [...parsed.diagnostics, ...checked.diagnostics, ...ane]
    .sort((a, b) => a.line - b.line || a.col - b.col)
  return { program, check: checked, diagnostics }
}
