/** Prints a built program and runs it through the parser, the type checker and (optionally) the ANE validator. */
import type { Program } from "../ast.js"
import { analyze } from "../analyze.js"
import { print } from "../printer.js"
import type { Chip } from "../validate.js"
import type { Diagnostic } from "../../schema/Diagnostic.js"

/** The printed text and every diagnostic of parse + check (+ ANE rules), positioned in that text. */
export const verifyBuilt = (
  program: Program,
  options: { readonly style: "apple" | "compact"; readonly ane?: { readonly chip?: Chip } | false }
): { readonly text: string; readonly program: Program | null; readonly diagnostics: ReadonlyArray<Diagnostic> } => {
  const text = print(program, { style: options.style })
  // Re-parsing the printed text gives every diagnostic a real line and column in `text`.
  const ane = options.ane ?? false
  const r = analyze(text, {
    file: "<built>",
    rules: ane === false ? "off" : "error",
    ...(ane !== false && ane.chip !== undefined ? { chip: ane.chip } : {})
  })
  return { text, program: r.program, diagnostics: r.diagnostics }
}
