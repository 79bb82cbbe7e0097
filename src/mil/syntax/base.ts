/** Shared parser state and helpers: current-token access, positioned failures, nesting guard. */
import type { Pos } from "../ast.js"
import { Lexer, Tok as TokExport, tokText, type TokKind } from "../lexer.js"

/** Token kinds as a module-local object: one read of the import, then plain property loads on the hot path. */
export const Tok = { ...TokExport }

/** A syntax problem found while parsing (1-based line/col). */
export interface SyntaxProblem {
  readonly message: string
  readonly line: number
  readonly col: number
  readonly offset: number
  readonly hint?: string
}

/** Thrown inside the parser only; caught at statement or program level. */
export class Fail {
  constructor(readonly problem: SyntaxProblem) {}
}

/** Deepest nesting of types, literals, tuples and blocks before parsing stops with a diagnostic. */
export const MAX_DEPTH = 200

/** `line:col` of a position, for messages. */
export const at = (p: Pos): string => `${p.line}:${p.col}`

const clip = (s: string): string => (s.length > 40 ? s.slice(0, 37) + "..." : s)

/** Lexer access and error helpers shared by the grammar layers. */
export class ParserBase {
  protected readonly lx: Lexer
  readonly problems: Array<SyntaxProblem> = []
  protected depth = 0

  constructor(text: string) {
    this.lx = new Lexer(text)
  }

  protected pos(): Pos {
    const lx = this.lx
    return { line: lx.tokLine, col: lx.tokCol, offset: lx.start }
  }

  protected problemHere(message: string, hint?: string): SyntaxProblem {
    const lx = this.lx
    const base = { message, line: lx.tokLine, col: lx.tokCol, offset: lx.start }
    return hint === undefined ? base : { ...base, hint }
  }

  protected describe(): string {
    const lx = this.lx
    switch (lx.k()) {
      case Tok.EOF: return "end of input"
      case Tok.Ident: return `'${clip(lx.slice())}'`
      case Tok.Number: return `number ${clip(lx.slice())}`
      case Tok.String: return `string ${clip(lx.slice())}`
      case Tok.Error: return lx.error
      default: return `'${tokText(lx.k())}'`
    }
  }

  protected fail(message: string, hint?: string): never {
    // A malformed token explains itself better than what the grammar wanted there.
    if (this.lx.k() === Tok.Error) throw new Fail(this.problemHere(this.lx.error))
    throw new Fail(this.problemHere(message, hint))
  }

  /** Items separated by ',' up to `close` (consumed); the opener was consumed at `open`. `what` names the list. */
  protected commaList<T>(item: () => T, close: TokKind, what: string, open: Pos): Array<T> {
    const lx = this.lx
    const out: Array<T> = []
    if (lx.k() === close) {
      lx.next()
      return out
    }
    while (true) {
      out.push(item())
      if (lx.k() === Tok.Comma) {
        lx.next()
        continue
      }
      if (lx.k() === close) {
        lx.next()
        return out
      }
      this.fail(`expected ',' or '${tokText(close)}' to close ${what} opened at ${at(open)}, found ${this.describe()}`)
    }
  }

  protected expect(kind: TokKind, what: string): void {
    if (this.lx.k() !== kind) this.fail(`expected '${tokText(kind)}' ${what}, found ${this.describe()}`)
    this.lx.next()
  }

  protected ident(what: string): string {
    const lx = this.lx
    if (lx.k() !== Tok.Ident) this.fail(`expected ${what}, found ${this.describe()}`)
    const s = lx.slice()
    lx.next()
    return s
  }

  protected enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH} levels`)
  }
}
