/** Values, literals and types of the MIL grammar (everything inside an argument or attribute list). */
import type { Dim, Literal, NamedValue, Pos, TypeExpr, Value } from "../ast.js"
import { numberValue, specialNumber, tokText, type TokKind } from "../lexer.js"
import { at, Fail, ParserBase, Tok } from "./base.js"

const closers = new Set<number>([Tok.Semi, Tok.RBrace, Tok.RBracket, Tok.RParen, Tok.EOF, Tok.Gt])

/** Parses `name = value` lists, values, literals and types. */
export class ValueParser extends ParserBase {
  protected namedValues(close: TokKind, what: string, open: Pos): Array<NamedValue> {
    const lx = this.lx
    const out: Array<NamedValue> = []
    if (lx.k() === close) {
      lx.next()
      return out
    }
    while (true) {
      const pos = this.pos()
      if (lx.k() !== Tok.Ident) {
        if (closers.has(lx.k())) {
          this.fail(`expected '${tokText(close)}' to close ${what} opened at ${at(open)}, found ${this.describe()}`)
        }
        this.fail(`expected a name ('name = value') in ${what}, found ${this.describe()}`)
      }
      const name = lx.slice()
      lx.next()
      if (lx.k() !== Tok.Eq) this.fail(`expected '=' after '${name}' in ${what}, found ${this.describe()}`)
      lx.next()
      const value = this.value(name, what)
      out.push({ name, value, pos })
      if (lx.k() === Tok.Comma) {
        lx.next()
        continue
      }
      if (lx.k() === close) {
        lx.next()
        return out
      }
      if (closers.has(lx.k())) {
        this.fail(`expected '${tokText(close)}' to close ${what} opened at ${at(open)}, found ${this.describe()}`)
      }
      this.fail(`expected ',' or '${tokText(close)}' after '${name} = ...' in ${what}, found ${this.describe()}`)
    }
  }


  // ---- values -----------------------------------------------------------------------------------------------------

  /** A value for argument `arg` of `owner` (both only used in messages). */
  protected value(arg: string, owner: string): Value {
    const lx = this.lx
    const pos = this.pos()
    switch (lx.k()) {
      case Tok.Ident: {
        const c = lx.peekChar()
        if (c === 60 /* < */) {
          const type = this.type(pos)
          return this.typedBody(type, pos)
        }
        if (c === 40 /* ( */) {
          const type: TypeExpr = { kind: "scalar", dtype: lx.slice(), pos }
          lx.next()
          return this.typedBody(type, pos)
        }
        const name = lx.slice()
        lx.next()
        return { kind: "ref", name, pos }
      }
      case Tok.LParen: {
        this.enter()
        lx.next()
        const items: Array<Value> = []
        if (lx.k() === Tok.RParen) lx.next()
        else {
          while (true) {
            items.push(this.value(arg, owner))
            if (lx.k() === Tok.Comma) {
              lx.next()
              continue
            }
            if (lx.k() === Tok.RParen) {
              lx.next()
              break
            }
            this.fail(`expected ',' or ')' to close the tuple opened at ${at(pos)}, found ${this.describe()}`)
          }
        }
        this.depth--
        return { kind: "tuple", items, pos }
      }
      case Tok.Number:
      case Tok.String:
      case Tok.LBracket:
      case Tok.Minus:
        return this.fail(
          `expected a value for '${arg}' in ${owner}, found ${this.describe()}: a literal needs its type`,
          "write e.g. int32(1), string(\"x\") or tensor<int32, [2]>([1, 2])"
        )
      default:
        return this.fail(`expected a value (a name, a typed literal or a tuple) for '${arg}' in ${owner}, found ${this.describe()}`)
    }
  }

  /** `(literal)` or `(BLOBFILE(...))` after a type; the '(' is current. */
  protected typedBody(type: TypeExpr, pos: Pos): Value {
    const lx = this.lx
    const open = this.pos()
    if (lx.k() !== Tok.LParen) this.fail(`expected '(' after the type ${typeText(type)} to give its value, found ${this.describe()}`)
    lx.next()
    let v: Value
    if (lx.isWord("BLOBFILE") && lx.peekChar() === 40) v = this.blob(type, pos)
    else v = { kind: "typed", type, literal: this.literal(), pos }
    if (lx.k() !== Tok.RParen) {
      this.fail(`expected ')' to close the value of type ${typeText(type)} opened at ${at(open)}, found ${this.describe()}`)
    }
    lx.next()
    return v
  }

  protected blob(type: TypeExpr, pos: Pos): Value {
    const lx = this.lx
    const bpos = this.pos()
    lx.next()
    const open = this.pos()
    lx.next()
    const fields = this.namedValues(Tok.RParen, "BLOBFILE(...)", open)
    const path = fields.find((f) => f.name === "path")
    const offset = fields.find((f) => f.name === "offset")
    const bad = fields.find((f) => f.name !== "path" && f.name !== "offset")
    const problem = (message: string, p: Pos): never => {
      throw new Fail({ message, line: p.line, col: p.col, offset: p.offset })
    }
    if (bad) problem(`unknown BLOBFILE field '${bad.name}': only 'path' and 'offset' are allowed`, bad.pos)
    if (!path || path.value.kind !== "typed" || path.value.literal.kind !== "string") {
      return problem("BLOBFILE needs path = string(\"@model_path/weights/<file>.bin\")", path?.pos ?? bpos)
    }
    if (!offset || offset.value.kind !== "typed" || offset.value.literal.kind !== "number") {
      return problem("BLOBFILE needs offset = uint64(<byte offset>)", offset?.pos ?? bpos)
    }
    const text = offset.value.literal.text
    if (!/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(text)) {
      return problem(`BLOBFILE offset must be a non-negative integer, found ${text}`, offset.value.literal.pos)
    }
    return {
      kind: "blob",
      type,
      pathType: path.value.type,
      path: path.value.literal.value,
      offsetType: offset.value.type,
      offset: BigInt(text),
      pos
    }
  }

  protected literal(): Literal {
    const lx = this.lx
    const pos = this.pos()
    switch (lx.k()) {
      case Tok.Number: {
        const text = lx.slice()
        lx.next()
        return { kind: "number", text, value: numberValue(text), pos }
      }
      case Tok.String: {
        const value = lx.str
        lx.next()
        return { kind: "string", value, pos }
      }
      case Tok.Ident: {
        const w = lx.slice()
        if (w === "true" || w === "false") {
          lx.next()
          return { kind: "bool", value: w === "true", pos }
        }
        const special = specialNumber(w)
        if (special !== undefined) {
          lx.next()
          return { kind: "number", text: w, value: special, pos }
        }
        return this.fail(`expected a literal (number, string, true/false, [list] or {dict}), found ${this.describe()}`)
      }
      case Tok.Minus:
      case Tok.Plus: {
        const sign = lx.k() === Tok.Minus ? "-" : "+"
        const end = lx.end
        lx.next()
        const special = lx.k() === Tok.Ident && lx.start === end ? specialNumber(lx.slice()) : undefined
        if (special === undefined) this.fail(`expected a number after '${sign}', found ${this.describe()}`)
        const text = sign + lx.slice()
        lx.next()
        return { kind: "number", text, value: sign === "-" ? -special : special, pos }
      }
      case Tok.LBracket:
        return { kind: "list", items: this.literalItems(Tok.RBracket, "list", pos), pos }
      case Tok.LParen:
        return { kind: "list", items: this.literalItems(Tok.RParen, "tuple", pos), tuple: true, pos }
      case Tok.LBrace: {
        this.enter()
        lx.next()
        const entries: Array<readonly [Literal, Literal]> = []
        if (lx.k() === Tok.RBrace) lx.next()
        else {
          while (true) {
            const epos = this.pos()
            this.expect(Tok.LBrace, `to open a {key, value} entry of the dict opened at ${at(pos)}`)
            const k = this.literal()
            this.expect(Tok.Comma, `between the key and the value of the dict entry opened at ${at(epos)}`)
            const v = this.literal()
            this.expect(Tok.RBrace, `to close the dict entry opened at ${at(epos)}`)
            entries.push([k, v])
            if (lx.k() === Tok.Comma) {
              lx.next()
              continue
            }
            if (lx.k() === Tok.RBrace) {
              lx.next()
              break
            }
            this.fail(`expected ',' or '}' to close the dict opened at ${at(pos)}, found ${this.describe()}`)
          }
        }
        this.depth--
        return { kind: "dict", entries, pos }
      }
      default:
        return this.fail(`expected a literal (number, string, true/false, [list] or {dict}), found ${this.describe()}`)
    }
  }

  // ---- types ------------------------------------------------------------------------------------------------------

  /** A type; `where` is its position when the caller already holds it (positions are immutable and may be shared). */
  /** Comma-separated literals up to `close` (consumed); the opener is the current token. */
  private literalItems(close: TokKind, what: "list" | "tuple", pos: Pos): Array<Literal> {
    this.enter()
    this.lx.next()
    const items = this.commaList(() => this.literal(), close, `the ${what}`, pos)
    this.depth--
    return items
  }


  protected type(where?: Pos): TypeExpr {
    const lx = this.lx
    const pos = where ?? this.pos()
    if (lx.k() !== Tok.Ident) this.fail(`expected a type (e.g. tensor<fp16, [1, 4]> or int32), found ${this.describe()}`)
    const name = lx.slice()
    if (lx.peekChar() !== 60) {
      lx.next()
      return { kind: "scalar", dtype: name, pos }
    }
    lx.next()
    const open = this.pos()
    lx.next()
    this.enter()
    let t: TypeExpr
    switch (name) {
      case "tensor": {
        const dtype = this.ident("the element type in tensor<...> (e.g. fp16)")
        let shape: Array<Dim> | null = null
        if (lx.k() === Tok.Comma) {
          lx.next()
          if (lx.k() === Tok.Star) lx.next()
          else if (lx.k() === Tok.LBracket) shape = this.dims()
          else this.fail(`expected the shape '[d0, d1, ...]' in tensor<${dtype}, ...>, found ${this.describe()}`)
        }
        t = { kind: "tensor", dtype, shape, pos }
        break
      }
      case "list": {
        const elem = this.type()
        let length: Dim | null = null
        if (lx.k() === Tok.Comma) {
          lx.next()
          length = this.dim()
        }
        t = { kind: "list", elem, length, pos }
        break
      }
      case "tuple": {
        const elems: Array<TypeExpr> = []
        if (lx.k() !== Tok.Gt) {
          elems.push(this.type())
          while (lx.k() === Tok.Comma) {
            lx.next()
            elems.push(this.type())
          }
        }
        t = { kind: "tuple", elems, pos }
        break
      }
      case "dict": {
        const key = this.type()
        this.expect(Tok.Comma, "between the key and value types of dict<K, V>")
        const value = this.type()
        t = { kind: "dict", key, value, pos }
        break
      }
      case "state": {
        t = { kind: "state", inner: this.type(), pos }
        break
      }
      default:
        return this.fail(`unknown type constructor '${name}<...>': expected tensor, list, tuple, dict or state`)
    }
    if (lx.k() !== Tok.Gt) this.fail(`expected '>' to close the type ${name}<...> opened at ${at(open)}, found ${this.describe()}`)
    lx.next()
    this.depth--
    return t
  }

  protected dims(): Array<Dim> {
    const open = this.pos()
    this.lx.next()
    return this.commaList(() => this.dim(), Tok.RBracket, "the shape", open)
  }


  protected dim(): Dim {
    const lx = this.lx
    if (lx.k() === Tok.Question) {
      lx.next()
      return "?"
    }
    if (lx.k() === Tok.Ident) {
      const symbol = lx.slice()
      lx.next()
      return { symbol }
    }
    if (lx.k() === Tok.Number) {
      const text = lx.slice()
      if (!/^[0-9]+$/.test(text)) this.fail(`a dimension must be a non-negative integer, '?' or a symbol, found ${text}`)
      // Past 2^53 − 1 a double rounds (9007199254740993 → …992): refuse rather than silently change the size.
      const n = Number(text)
      if (!Number.isSafeInteger(n)) {
        this.fail(`dimension ${text.length > 40 ? text.slice(0, 37) + "..." : text} is out of range: a dimension ` +
          `must be at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1)`)
      }
      lx.next()
      return n
    }
    return this.fail(`expected a dimension (integer, '?' or symbol), found ${this.describe()}`)
  }
}


/** Short text of a type for messages. */
export const typeText = (t: TypeExpr): string => {
  switch (t.kind) {
    case "scalar": return t.dtype
    case "tensor": return t.shape === null ? `tensor<${t.dtype}>` : `tensor<${t.dtype}, [${t.shape.map(dimText).join(", ")}]>`
    case "list": return `list<${typeText(t.elem)}${t.length === null ? "" : `, ${dimText(t.length)}`}>`
    case "tuple": return `tuple<${t.elems.map(typeText).join(", ")}>`
    case "dict": return `dict<${typeText(t.key)}, ${typeText(t.value)}>`
    case "state": return `state<${typeText(t.inner)}>`
  }
}

/** Text of one dimension. */
export const dimText = (d: Dim): string => (typeof d === "number" ? String(d) : d === "?" ? "?" : d.symbol)
