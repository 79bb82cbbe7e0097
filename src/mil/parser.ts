/** MIL text parser: `parse` returns a Program or positioned syntax diagnostics and never throws. */
import * as Effect from "effect/Effect"
import { Diagnostic } from "../schema/Diagnostic.js"
import { CompileError } from "../schema/errors.js"
import type { Program } from "./ast.js"
import { Grammar } from "./syntax/grammar.js"

/** Options of {@link parse}: `file` is copied into every diagnostic. */
export interface ParseOptions {
  readonly file?: string
}

/** What {@link parse} returns: the program (null on any syntax error) and the diagnostics found. */
export interface ParseResult {
  readonly program: Program | null
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/** Diagnostic code of every syntax error. */
export const SYNTAX_CODE = "MIL-SYNTAX"

/** Parses MIL text. Never throws; syntax errors come back as `kind: "syntax"` diagnostics with 1-based line/col. */
export const parse = (text: string, options?: ParseOptions): ParseResult => {
  let program: Program | null = null
  let problems: ReadonlyArray<{ message: string; line: number; col: number; hint?: string }>
  try {
    const g = new Grammar(typeof text === "string" ? text : String(text))
    program = g.run()
    problems = g.problems
  } catch (e) {
    problems = [{ message: `internal parser error: ${String(e)}`, line: 1, col: 1 }]
  }
  const file = options?.file
  const diagnostics = problems.map((p) =>
    new Diagnostic({
      kind: "syntax",
      severity: "error",
      code: SYNTAX_CODE,
      message: p.message,
      line: p.line,
      col: p.col,
      ...(file !== undefined ? { file } : {}),
      ...(p.hint !== undefined ? { hint: p.hint } : {})
    })
  )
  return { program: diagnostics.length === 0 ? program : null, diagnostics }
}

/** {@link parse} as an Effect: fails with a CompileError carrying the syntax diagnostics. */
export const parseEffect = (text: string, options?: ParseOptions): Effect.Effect<Program, CompileError> =>
  Effect.suspend(() => {
    const { program, diagnostics } = parse(text, options)
    if (program !== null) return Effect.succeed(program)
    return Effect.fail(
      new CompileError({
        op: "parse",
        diagnostics,
        ...(options?.file !== undefined ? { model: options.file } : {})
      })
    )
  })
