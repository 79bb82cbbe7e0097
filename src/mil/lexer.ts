/** Hand-written MIL lexer: scans char codes on demand, one token at a time, with 1-based line/col positions. */

/** Token kinds (small integers so the parser compares numbers, not strings). */
export const Tok = {
  EOF: 0,
  Ident: 1,
  Number: 2,
  String: 3,
  LParen: 4,
  RParen: 5,
  LBracket: 6,
  RBracket: 7,
  LBrace: 8,
  RBrace: 9,
  Lt: 10,
  Gt: 11,
  Comma: 12,
  Eq: 13,
  Semi: 14,
  Arrow: 15,
  Question: 16,
  Star: 17,
  Minus: 18,
  Plus: 19,
  Error: 20
} as const
/** One of the {@link Tok} values. */
export type TokKind = (typeof Tok)[keyof typeof Tok]

const punctText: Record<number, string> = {
  [Tok.LParen]: "(", [Tok.RParen]: ")", [Tok.LBracket]: "[", [Tok.RBracket]: "]", [Tok.LBrace]: "{",
  [Tok.RBrace]: "}", [Tok.Lt]: "<", [Tok.Gt]: ">", [Tok.Comma]: ",", [Tok.Eq]: "=", [Tok.Semi]: ";",
  [Tok.Arrow]: "->", [Tok.Question]: "?", [Tok.Star]: "*", [Tok.Minus]: "-", [Tok.Plus]: "+"
}

/** The spelling of a punctuation kind, e.g. `")"`; used in messages. */
export const tokText = (k: TokKind): string => punctText[k] ?? ""

// Character classes by code: 1 = identifier start, 2 = digit, 4 = identifier continue.
const cls = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c)
  if (/[A-Za-z_]/.test(ch)) cls[c] = 1 | 4
  else if (/[0-9]/.test(ch)) cls[c] = 2 | 4
}

const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
const hexVal = (c: number) => (c <= 57 ? c - 48 : (c | 32) - 87)

/** Scanner state; the current token is described by the public fields and replaced by `next()`. */
export class Lexer {
  readonly text: string
  private readonly len: number
  private p = 0
  private line = 1
  private lineStart = 0
  kind: TokKind = Tok.EOF
  start = 0
  end = 0
  tokLine = 1
  tokCol = 1
  /** Decoded value of a String token. */
  str = ""
  /** Message of an Error token. */
  error = ""
  /** Offset/line/col of the end of the previous token (for "missing ';' after …" messages). */
  prevEnd = 0
  prevLine = 1
  prevCol = 1

  constructor(text: string) {
    this.text = text
    this.len = text.length
    this.next()
  }

  /** Kind of the current token (a method so callers re-read it after `next()`). */
  k(): TokKind {
    return this.kind
  }

  /** Source text of the current token. */
  slice(): string {
    return this.text.slice(this.start, this.end)
  }

  /** True when the current token is the identifier `word` (no allocation). */
  isWord(word: string): boolean {
    if (this.kind !== Tok.Ident || this.end - this.start !== word.length) return false
    return this.text.startsWith(word, this.start)
  }

  private skipTrivia(): void {
    const t = this.text
    const n = this.len
    let p = this.p
    while (p < n) {
      const c = t.charCodeAt(p)
      if (c === 10) {
        p++
        this.line++
        this.lineStart = p
      } else if (c === 32 || c === 9 || c === 13 || c === 12 || c === 11) p++
      else if (c === 47 && t.charCodeAt(p + 1) === 47) {
        // `//` comment to end of line
        p += 2
        while (p < n && t.charCodeAt(p) !== 10) p++
      } else if (c === 0xfeff) p++
      else break
    }
    this.p = p
  }

  /** The first character code after the current token, skipping whitespace (no comments); -1 at the end. */
  peekChar(): number {
    const t = this.text
    let p = this.end
    while (p < this.len) {
      const c = t.charCodeAt(p)
      if (c === 32 || c === 10 || c === 9 || c === 13) p++
      else return c
    }
    return -1
  }

  /** Advance to the next token. */
  next(): void {
    this.prevEnd = this.end
    this.prevLine = this.line
    this.prevCol = this.end - this.lineStart + 1
    this.skipTrivia()
    const t = this.text
    const p = this.p
    this.start = p
    this.tokLine = this.line
    this.tokCol = p - this.lineStart + 1
    if (p >= this.len) {
      this.kind = Tok.EOF
      this.end = p
      return
    }
    const c = t.charCodeAt(p)
    if (c < 128 && (cls[c]! & 1) !== 0) {
      let q = p + 1
      while (q < this.len) {
        const d = t.charCodeAt(q)
        if (d < 128 && (cls[d]! & 4) !== 0) q++
        else break
      }
      this.finish(Tok.Ident, q)
      return
    }
    if ((c >= 48 && c <= 57) || (c === 46 && this.isDigitAt(p + 1))) {
      this.scanNumber(p)
      return
    }
    switch (c) {
      case 34:
        this.scanString(p)
        return
      case 40: return this.finish(Tok.LParen, p + 1)
      case 41: return this.finish(Tok.RParen, p + 1)
      case 91: return this.finish(Tok.LBracket, p + 1)
      case 93: return this.finish(Tok.RBracket, p + 1)
      case 123: return this.finish(Tok.LBrace, p + 1)
      case 125: return this.finish(Tok.RBrace, p + 1)
      case 60: return this.finish(Tok.Lt, p + 1)
      case 62: return this.finish(Tok.Gt, p + 1)
      case 44: return this.finish(Tok.Comma, p + 1)
      case 61: return this.finish(Tok.Eq, p + 1)
      case 59: return this.finish(Tok.Semi, p + 1)
      case 63: return this.finish(Tok.Question, p + 1)
      case 42: return this.finish(Tok.Star, p + 1)
      case 45: {
        const d = t.charCodeAt(p + 1)
        if (d === 62) return this.finish(Tok.Arrow, p + 2)
        if ((d >= 48 && d <= 57) || (d === 46 && this.isDigitAt(p + 2))) return this.scanNumber(p)
        return this.finish(Tok.Minus, p + 1)
      }
      case 43: {
        const d = t.charCodeAt(p + 1)
        if ((d >= 48 && d <= 57) || (d === 46 && this.isDigitAt(p + 2))) return this.scanNumber(p)
        return this.finish(Tok.Plus, p + 1)
      }
    }
    const cp = t.codePointAt(p)!
    const w = cp > 0xffff ? 2 : 1
    this.error = `unexpected character '${String.fromCodePoint(cp)}' (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`
    this.finish(Tok.Error, p + w)
  }

  private isDigitAt(p: number): boolean {
    const c = this.text.charCodeAt(p)
    return c >= 48 && c <= 57
  }

  private finish(kind: TokKind, end: number): void {
    this.kind = kind
    this.end = end
    this.p = end
  }

  private scanNumber(p0: number): void {
    const t = this.text
    const n = this.len
    let p = p0
    let c = t.charCodeAt(p)
    if (c === 45 || c === 43) c = t.charCodeAt(++p)
    if (c === 48 && (t.charCodeAt(p + 1) | 32) === 120) {
      p += 2
      while (p < n && isHex(t.charCodeAt(p))) p++
      if (t.charCodeAt(p) === 46) {
        p++
        while (p < n && isHex(t.charCodeAt(p))) p++
      }
      if ((t.charCodeAt(p) | 32) === 112) p = this.scanExponent(p)
    } else {
      while (p < n && this.isDigitAt(p)) p++
      if (t.charCodeAt(p) === 46) {
        p++
        while (p < n && this.isDigitAt(p)) p++
      }
      if ((t.charCodeAt(p) | 32) === 101) p = this.scanExponent(p)
    }
    // A number glued to letters (`12abc`) is one malformed token, reported as such.
    let q = p
    while (q < n) {
      const d = t.charCodeAt(q)
      if (d < 128 && (cls[d]! & 4) !== 0) q++
      else break
    }
    if (q > p) {
      this.error = `malformed number '${t.slice(p0, q)}'`
      this.finish(Tok.Error, q)
      return
    }
    this.finish(Tok.Number, p)
  }

  private scanExponent(p: number): number {
    const t = this.text
    let q = p + 1
    const s = t.charCodeAt(q)
    if (s === 45 || s === 43) q++
    if (!this.isDigitAt(q)) return p
    while (q < this.len && this.isDigitAt(q)) q++
    return q
  }

  private scanString(p0: number): void {
    const t = this.text
    const n = this.len
    let p = p0 + 1
    let chunkStart = p
    let out = ""
    while (true) {
      if (p >= n) {
        this.error = "unterminated string literal (missing closing '\"')"
        this.finish(Tok.Error, p)
        return
      }
      const c = t.charCodeAt(p)
      if (c === 34) break
      if (c === 10) {
        this.error = "unterminated string literal: a line break inside a string must be written as \\n"
        this.finish(Tok.Error, p)
        return
      }
      if (c !== 92) {
        p++
        continue
      }
      out += t.slice(chunkStart, p)
      const e = t.charCodeAt(p + 1)
      let width = 2
      switch (e) {
        case 34: out += "\""; break
        case 92: out += "\\"; break
        case 39: out += "'"; break
        case 47: out += "/"; break
        case 110: out += "\n"; break
        case 116: out += "\t"; break
        case 114: out += "\r"; break
        case 98: out += "\b"; break
        case 102: out += "\f"; break
        case 48: out += "\0"; break
        case 120:
        case 117: {
          const digits = e === 120 ? 2 : 4
          let v = 0
          for (let i = 0; i < digits; i++) {
            const h = t.charCodeAt(p + 2 + i)
            if (!isHex(h)) {
              this.error = `bad escape '${t.slice(p, Math.min(p + 2 + digits, n))}': expected ${digits} hex digits`
              this.finish(Tok.Error, p + 2 + i)
              return
            }
            v = v * 16 + hexVal(h)
          }
          out += String.fromCharCode(v)
          width = 2 + digits
          break
        }
        default:
          this.error = `unknown escape '\\${Number.isNaN(e) ? "" : String.fromCharCode(e)}' in string literal`
          this.finish(Tok.Error, Math.min(p + 2, n))
          return
      }
      p += width
      chunkStart = p
    }
    this.str = chunkStart === p0 + 1 ? t.slice(chunkStart, p) : out + t.slice(chunkStart, p)
    this.finish(Tok.String, p + 1)
  }
}

/** Numeric value of a number literal's text: decimal, C99 hex float, or inf/nan, each with an optional sign. */
export const numberValue = (text: string): number => {
  let i = 0
  let sign = 1
  const c0 = text.charCodeAt(0)
  if (c0 === 45 || c0 === 43) {
    if (c0 === 45) sign = -1
    i = 1
  }
  if (text.charCodeAt(i) === 48 && (text.charCodeAt(i + 1) | 32) === 120) {
    let m = 0
    let exp = 0
    let p = i + 2
    const n = text.length
    while (p < n && isHex(text.charCodeAt(p))) m = m * 16 + hexVal(text.charCodeAt(p++))
    if (text.charCodeAt(p) === 46) {
      p++
      while (p < n && isHex(text.charCodeAt(p))) {
        m = m * 16 + hexVal(text.charCodeAt(p++))
        exp -= 4
      }
    }
    if ((text.charCodeAt(p) | 32) === 112) exp += Number(text.slice(p + 1))
    // Split the scaling so tiny subnormals do not underflow to zero in one step.
    const half = Math.trunc(exp / 2)
    return sign * m * Math.pow(2, half) * Math.pow(2, exp - half)
  }
  const c = text.charCodeAt(i) | 32
  if (c === 105 || c === 110) {
    const special = specialNumber(text.slice(i))
    if (special !== undefined) return sign * special
  }
  return Number(text)
}

/** Value of the words `inf`/`infinity`/`nan` (any case) that stand for numbers in literals; undefined otherwise. */
export const specialNumber = (word: string): number | undefined => {
  switch (word.toLowerCase()) {
    case "inf":
    case "infinity":
      return Infinity
    case "nan":
      return NaN
    default:
      return undefined
  }
}
