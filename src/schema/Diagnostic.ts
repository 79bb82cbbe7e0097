/** Positioned diagnostics produced by the MIL parser, checker and ANE validator. */
import * as Schema from "effect/Schema"

/** Where a diagnostic comes from: the lexer/parser, the type and shape checker, or the ANE rule set. */
export const DiagnosticKind = Schema.Literal("syntax", "type", "ane")
export type DiagnosticKind = typeof DiagnosticKind.Type

/** How bad a finding is; only `error` stops a compile by default. */
export const Severity = Schema.Literal("error", "warning", "info")
export type Severity = typeof Severity.Type

/** One finding, 1-based line and column into the MIL text. */
export class Diagnostic extends Schema.Class<Diagnostic>("Diagnostic")({
  kind: DiagnosticKind,
  severity: Severity,
  code: Schema.String,
  message: Schema.String,
  line: Schema.Number,
  col: Schema.Number,
  file: Schema.optional(Schema.String),
  hint: Schema.optional(Schema.String),
  source: Schema.optional(Schema.String)
}) {}

/** `file:line:col: severity code: message` — the compiler-style one-line form. */
export const formatDiagnostic = (d: Diagnostic): string =>
  `${d.file ?? "<mil>"}:${d.line}:${d.col}: ${d.severity} ${d.code}: ${d.message}` + (d.hint ? ` (hint: ${d.hint})` : "")
