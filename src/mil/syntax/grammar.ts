/**
 * Recursive-descent MIL grammar (program, functions, operations, nested blocks); errors unwind to the nearest
 * statement and recover there. The accepted language:
 *   program   := "program" "(" NUMBER ")" attrs? "{" function* "}"
 *   function  := "func" IDENT ("<" IDENT ">")? "(" bindings? ")" attrs? block
 *   block     := "{" operation* "}" "->" "(" (IDENT ("," IDENT)*)? ")"
 *   operation := binding ("," binding)* "=" IDENT "(" named? ")" attrs? (("(" bindings ")")? block)* ";"
 *   binding   := type IDENT          attrs := "[" named? "]"          named := IDENT "=" value ("," ...)*
 *   value     := IDENT | type "(" (literal | BLOBFILE "(" named ")") ")" | "(" value ("," value)* ")"
 *   literal   := NUMBER | "-"? (inf | nan) | STRING | true | false | "[" ... "]" | "(" ... ")" | "{" ("{" k "," v "}")* "}"
 *   type      := IDENT | tensor<dt ("," ("[" dims "]" | "*"))?> | list<type ("," dim)?> | tuple<types> | dict<k, v> | state<type>
 */
import type { Binding, Block, MilFunction, NamedValue, Operation, Pos, Program } from "../ast.js"
import { at, Fail, Tok } from "./base.js"
import { ValueParser } from "./values.js"

export type { SyntaxProblem } from "./base.js"
export { dimText, typeText } from "./values.js"

const MAX_PROBLEMS = 50

/** Parses one MIL program; collects problems instead of throwing. */
export class Grammar extends ValueParser {
  /** The program, or null when any problem was found. */
  run(): Program | null {
    try {
      const program = this.program()
      return this.problems.length === 0 ? program : null
    } catch (e) {
      if (e instanceof Fail) this.problems.push(e.problem)
      else if (e instanceof RangeError) this.problems.push(this.problemHere("the text is nested too deeply to parse"))
      else this.problems.push(this.problemHere(`internal parser error: ${String(e)}`))
      return null
    }
  }

  // ---- program and functions -----------------------------------------------------------------------------------

  private program(): Program {
    const lx = this.lx
    const pos = this.pos()
    if (!lx.isWord("program")) this.fail(`expected 'program(<version>)' at the start of the MIL text, found ${this.describe()}`)
    lx.next()
    this.expect(Tok.LParen, "after 'program'")
    if (lx.k() !== Tok.Number) this.fail(`expected the program version (e.g. 1.0 or 1.3) in 'program(...)', found ${this.describe()}`)
    const version = lx.slice()
    lx.next()
    this.expect(Tok.RParen, "to close 'program('")
    const attributes = lx.k() === Tok.LBracket ? this.attributeBlock("the program") : []
    const open = this.pos()
    this.expect(Tok.LBrace, "to open the program body")
    const functions: Array<MilFunction> = []
    while (lx.k() !== Tok.RBrace) {
      if (lx.k() === Tok.EOF) this.fail(`expected '}' to close the program body opened at ${at(open)}, found end of input`)
      if (!lx.isWord("func")) {
        this.fail(`expected 'func' or '}' in the program body opened at ${at(open)}, found ${this.describe()}`)
      }
      functions.push(this.func())
    }
    lx.next()
    if (lx.k() !== Tok.EOF) this.fail(`unexpected ${this.describe()} after the end of the program`)
    return { version, attributes, functions, pos }
  }

  private func(): MilFunction {
    const lx = this.lx
    const pos = this.pos()
    lx.next()
    const name = this.ident("the function name after 'func'")
    let opset: string | null = null
    if (lx.k() === Tok.Lt) {
      lx.next()
      opset = this.ident(`the opset name in 'func ${name}<...>' (e.g. ios18)`)
      this.expect(Tok.Gt, `to close the opset of function ${name}`)
    }
    const open = this.pos()
    this.expect(Tok.LParen, `to open the input list of function ${name}`)
    const inputs = this.bindings(`the input list of function ${name}`, open)
    const attributes = lx.k() === Tok.LBracket ? this.attributeBlock(`function ${name}`) : []
    const body = this.blockBody(pos, [], `function ${name}`)
    if (lx.k() === Tok.Semi) lx.next()
    return { name, opset, inputs, attributes, body, pos }
  }

  /** `(T a, T b)` after the '(' ; consumes the ')'. */
  private bindings(what: string, open: Pos): Array<Binding> {
    return this.commaList(() => {
      const pos = this.pos()
      const type = this.type()
      const name = this.ident(`a name after the type in ${what}`)
      return { name, type, pos }
    }, Tok.RParen, what, open)
  }


  /** `{ ops } -> (outs)`; the '{' is the current token. */
  private blockBody(pos: Pos, params: ReadonlyArray<Binding>, owner: string): Block {
    const lx = this.lx
    const open = this.pos()
    this.expect(Tok.LBrace, `to open the body of ${owner}`)
    const operations: Array<Operation> = []
    while (lx.k() !== Tok.RBrace) {
      if (lx.k() === Tok.EOF) this.fail(`expected '}' to close the body of ${owner} opened at ${at(open)}, found end of input`)
      const before = lx.start
      const depth = this.depth
      try {
        operations.push(this.operation())
      } catch (e) {
        if (!(e instanceof Fail)) throw e
        this.depth = depth
        this.problems.push(e.problem)
        if (this.problems.length >= MAX_PROBLEMS) throw new Fail(this.problemHere("too many errors; stopping"))
        this.recover(before)
      }
    }
    lx.next()
    if (lx.k() !== Tok.Arrow) this.fail(`expected '->' and the returned names after the body of ${owner}, found ${this.describe()}`)
    lx.next()
    const outOpen = this.pos()
    this.expect(Tok.LParen, `to open the list of names returned by ${owner}`)
    const outputs: Array<string> = []
    if (lx.k() === Tok.RParen) lx.next()
    else {
      while (true) {
        outputs.push(this.ident(`a returned name in the output list of ${owner}`))
        if (lx.k() === Tok.Comma) {
          lx.next()
          continue
        }
        if (lx.k() === Tok.RParen) {
          lx.next()
          break
        }
        this.fail(`expected ',' or ')' to close the output list of ${owner} opened at ${at(outOpen)}, found ${this.describe()}`)
      }
    }
    return { params, operations, outputs, pos }
  }

  /** Skip to just after the next ';' (or to a '}' that closes the enclosing body), always making progress. */
  private recover(before: number): void {
    const lx = this.lx
    let depth = 0
    if (lx.start === before && lx.k() !== Tok.EOF && lx.k() !== Tok.RBrace) lx.next()
    while (lx.k() !== Tok.EOF) {
      const k = lx.k()
      if (k === Tok.Semi && depth <= 0) {
        lx.next()
        return
      }
      if (k === Tok.RBrace) {
        if (depth <= 0) return
        depth--
      } else if (k === Tok.LBrace) depth++
      lx.next()
    }
  }

  // ---- operations -------------------------------------------------------------------------------------------------

  private operation(): Operation {
    const lx = this.lx
    const pos = this.pos()
    const outputs: Array<Binding> = []
    // An op with no results (`write_state(...)`) starts with its name directly followed by '('.
    const noResults = lx.k() === Tok.Ident && lx.peekChar() === 40
    while (!noResults) {
      const bpos = outputs.length === 0 ? pos : this.pos()
      if (lx.k() !== Tok.Ident) {
        this.fail(`expected an operation ('<type> <name> = <op>(...)') or '}', found ${this.describe()}`)
      }
      const type = this.type(bpos)
      const name = this.ident("the result name after its type")
      outputs.push({ name, type, pos: bpos })
      if (lx.k() === Tok.Comma) {
        lx.next()
        continue
      }
      break
    }
    if (!noResults) {
      if (lx.k() !== Tok.Eq) {
        this.fail(`expected '=' or ',' after the result '${outputs[outputs.length - 1]!.name}', found ${this.describe()}`)
      }
      lx.next()
    }
    const op = this.ident("the operation name after '='")
    const open = this.pos()
    this.expect(Tok.LParen, `to open the argument list of ${op}`)
    const args = this.namedValues(Tok.RParen, `the argument list of ${op}`, open)
    const attributes = lx.k() === Tok.LBracket ? this.attributeBlock(op) : []
    const blocks: Array<Block> = []
    while (lx.k() === Tok.LBrace || lx.k() === Tok.LParen) {
      const bpos = this.pos()
      let params: Array<Binding> = []
      if (lx.k() === Tok.LParen) {
        const popen = this.pos()
        lx.next()
        params = this.bindings(`the block inputs of ${op}`, popen)
      }
      this.enter()
      blocks.push(this.blockBody(bpos, params, `a block of ${op}`))
      this.depth--
    }
    if (lx.k() === Tok.Error) this.fail("")
    if (lx.k() !== Tok.Semi) {
      // Reported at the end of the statement, where the ';' belongs; parsing goes on as if it were there.
      const what = lx.k() === Tok.EOF ? "end of input" : this.describe()
      this.problems.push({
        message: `expected ';' after the ${op} operation, found ${what}`,
        line: lx.prevLine,
        col: lx.prevCol,
        offset: lx.prevEnd
      })
      if (this.problems.length >= MAX_PROBLEMS) throw new Fail(this.problemHere("too many errors; stopping"))
      if (lx.k() !== Tok.Ident && lx.k() !== Tok.RBrace) throw new Fail(this.problems.pop()!)
    } else lx.next()
    return { outputs, op, args, attributes, blocks, pos }
  }

  private attributeBlock(owner: string): Array<NamedValue> {
    const open = this.pos()
    this.lx.next()
    return this.namedValues(Tok.RBracket, `the attribute block of ${owner}`, open)
  }

  /** `name = value, ...` up to `close` (consumed); the opener was consumed by the caller. */
}
