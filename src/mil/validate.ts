/**
 * The ANE rule validator: checks a type-checked program against what the engine's compiler and runtime are
 * reported to accept (spec/ane-constraints.md, spec/ane-field-facts.md), per chip family. Findings are
 * `kind: "ane"` diagnostics whose code is the rule id.
 */
import { Diagnostic } from "../schema/Diagnostic.js"
import type { Program } from "./ast.js"
import { check } from "./check.js"
import type { CheckResult } from "./check.js"
import type { AneRule, Chip, Finding } from "./rules/context.js"
import { RuleContext } from "./rules/context.js"
import { ioRules } from "./rules/io.js"
import { formRules } from "./rules/forms.js"
import { opRulesAne } from "./rules/ops.js"
import { programRules } from "./rules/program.js"

export type { AneRule, Chip, Finding } from "./rules/context.js"
export { allocationBytes, chips } from "./rules/context.js"

/** Every ANE rule, in id order. */
export const rules: ReadonlyArray<AneRule> = [...ioRules, ...opRulesAne, ...formRules, ...programRules]

/** Options of {@link validate}. */
export interface ValidateOptions {
  /** The chip family to check for; without one every rule applies with its strictest threshold. */
  readonly chip?: Chip
  /** A previous {@link check} of the same program (computed here when absent). */
  readonly checked?: CheckResult
  readonly file?: string
}

/** Runs every rule that applies to the chip; diagnostics come back sorted by position. */
export const validate = (program: Program, options: ValidateOptions = {}): ReadonlyArray<Diagnostic> => {
  const checked = options.checked ?? check(program)
  const ctx = new RuleContext(program, checked, options.chip)
  const out: Array<Diagnostic> = []
  for (const rule of rules) {
    if (options.chip !== undefined && !rule.chips.includes(options.chip)) continue
    let found: ReadonlyArray<Finding>
    try {
      found = rule.check(ctx)
    } catch (e) {
      // One broken rule must not hide the others' findings.
      found = [{ pos: program.pos, message: `rule could not run: expected a checkable program, found ${String(e)}` }]
    }
    for (const f of found) {
      out.push(new Diagnostic({
        kind: "ane",
        severity: rule.severity,
        code: rule.id,
        message: `${f.message} [${rule.name}]`,
        line: f.pos.line,
        col: f.pos.col,
        hint: f.hint ?? rule.hint,
        ...(options.file !== undefined ? { file: options.file } : {})
      }))
    }
  }
  return out.sort((a, b) => a.line - b.line || a.col - b.col || a.code.localeCompare(b.code))
}
