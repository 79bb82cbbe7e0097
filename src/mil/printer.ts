/** MIL printer: Apple's spaced model.mil layout or the compact layout of the Go generators; parse(print(p)) ≡ p. */
import type { Binding, Block, Dim, Literal, MilFunction, NamedValue, Operation, Program, TypeExpr, Value } from "./ast.js"

/** `apple`: coremltools' model.mil spacing (`k = v`, `[1, 2]`); `compact`: `k=v`, `[1,2]` as the Go generators write. */
export type PrintStyle = "apple" | "compact"

/** Options of {@link print}. */
export interface PrintOptions {
  readonly style?: PrintStyle
}

interface Layout {
  /** Separator between a name and its value: " = " or "=". */
  readonly eq: string
  /** Separator between arguments and between tuple items. */
  readonly argSep: string
  /** Separator between attributes. */
  readonly attrSep: string
  /** Separator between dims and list items. */
  readonly itemSep: string
}

const apple: Layout = { eq: " = ", argSep: ", ", attrSep: ", ", itemSep: ", " }
const compact: Layout = { eq: "=", argSep: ",", attrSep: ", ", itemSep: "," }

const dimText = (d: Dim): string => (typeof d === "number" ? String(d) : d === "?" ? "?" : d.symbol)

/** Text of a type; `sep` separates the dims of a shape. */
export const printType = (t: TypeExpr, sep = ", "): string => {
  switch (t.kind) {
    case "scalar":
      return t.dtype
    case "tensor":
      return t.shape === null ? `tensor<${t.dtype}>` : `tensor<${t.dtype}, [${t.shape.map(dimText).join(sep)}]>`
    case "list":
      return `list<${printType(t.elem, sep)}${t.length === null ? "" : `, ${dimText(t.length)}`}>`
    case "tuple":
      return `tuple<${t.elems.map((e) => printType(e, sep)).join(", ")}>`
    case "dict":
      return `dict<${printType(t.key, sep)}, ${printType(t.value, sep)}>`
    case "state":
      return `state<${printType(t.inner, sep)}>`
  }
}

/** A string literal with quotes; escapes quote, backslash and control characters. */
export const quoteString = (s: string): string => {
  let out = "\""
  let start = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0x20 && c !== 34 && c !== 92 && c !== 0x7f) continue
    out += s.slice(start, i)
    start = i + 1
    switch (c) {
      case 34: out += "\\\""; break
      case 92: out += "\\\\"; break
      case 10: out += "\\n"; break
      case 9: out += "\\t"; break
      case 13: out += "\\r"; break
      default: out += "\\u" + c.toString(16).padStart(4, "0")
    }
  }
  return out + s.slice(start) + "\""
}

const printLiteral = (l: Literal, L: Layout): string => {
  switch (l.kind) {
    case "number":
      return l.text
    case "string":
      return quoteString(l.value)
    case "bool":
      return l.value ? "true" : "false"
    case "list": {
      const inner = l.items.map((i) => printLiteral(i, L)).join(L.itemSep)
      return l.tuple === true ? `(${inner})` : `[${inner}]`
    }
    case "dict":
      return `{${l.entries.map(([k, v]) => `{${printLiteral(k, L)}${L.itemSep}${printLiteral(v, L)}}`).join(L.itemSep)}}`
  }
}

const printValue = (v: Value, L: Layout, dimSep: string): string => {
  switch (v.kind) {
    case "ref":
      return v.name
    case "tuple":
      return `(${v.items.map((i) => printValue(i, L, dimSep)).join(L.argSep)})`
    case "typed":
      return `${printType(v.type, dimSep)}(${printLiteral(v.literal, L)})`
    case "blob":
      return `${printType(v.type, dimSep)}(BLOBFILE(path${L.eq}${printType(v.pathType, dimSep)}(${quoteString(v.path)}), ` +
        `offset${L.eq}${printType(v.offsetType, dimSep)}(${v.offset.toString()})))`
  }
}

const printNamed = (items: ReadonlyArray<NamedValue>, sep: string, L: Layout, dimSep: string): string =>
  items.map((a) => `${a.name}${L.eq}${printValue(a.value, L, dimSep)}`).join(sep)

const printBindings = (bs: ReadonlyArray<Binding>, dimSep: string): string =>
  bs.map((b) => `${printType(b.type, dimSep)} ${b.name}`).join(", ")

class Printer {
  readonly out: Array<string> = []
  constructor(private readonly L: Layout, private readonly style: PrintStyle) {}

  program(p: Program): void {
    this.out.push(`program(${p.version})\n`)
    // Program attributes (buildInfo) are written spaced in both styles, as every generator does.
    if (p.attributes.length > 0) this.out.push(`[${printNamed(p.attributes, ", ", apple, ", ")}]\n`)
    this.out.push("{\n")
    for (const f of p.functions) this.func(f)
    // model.mil files written by Apple's tools end at the closing brace; the Go generators add a newline.
    this.out.push(this.style === "apple" ? "}" : "}\n")
  }

  private func(f: MilFunction): void {
    const head = `    func ${f.name}${f.opset === null ? "" : `<${f.opset}>`}(${printBindings(f.inputs, ", ")})`
    const attrs = f.attributes.length > 0 ? ` [${printNamed(f.attributes, ", ", apple, ", ")}]` : ""
    this.out.push(`${head}${attrs} {\n`)
    // Apple's model.mil puts the body one level deeper than the function line and the closing brace between them.
    const blockIndent = this.style === "apple" ? "        " : "    "
    this.blockInner(f.body, blockIndent)
    this.out.push(`${blockIndent}} -> (${f.body.outputs.join(", ")});\n`)
  }

  private blockInner(b: Block, indent: string): void {
    const opIndent = indent + "    "
    for (const op of b.operations) this.operation(op, opIndent)
  }

  private operation(op: Operation, indent: string): void {
    const L = this.L
    const dimSep = L.itemSep
    const results = op.outputs.map((o) => `${printType(o.type, dimSep)} ${o.name}`).join(", ")
    let s = `${indent}${results.length > 0 ? `${results} = ` : ""}${op.op}(` +
      `${printNamed(op.args, L.argSep, L, dimSep)})`
    if (op.attributes.length > 0) s += `[${printNamed(op.attributes, L.attrSep, L, dimSep)}]`
    if (op.blocks.length === 0) {
      this.out.push(s + ";\n")
      return
    }
    const blockIndent = indent + "    "
    for (let i = 0; i < op.blocks.length; i++) {
      const b = op.blocks[i]!
      const params = b.params.length > 0 ? ` (${printBindings(b.params, dimSep)})` : ""
      this.out.push(`${s}${params} {\n`)
      this.blockInner(b, blockIndent)
      s = `${blockIndent}} -> (${b.outputs.join(", ")})`
    }
    this.out.push(s + ";\n")
  }
}

/** Prints a program as MIL text (default style `apple`). */
export const print = (program: Program, options?: PrintOptions): string => {
  const style = options?.style ?? "apple"
  const p = new Printer(style === "compact" ? compact : apple, style)
  p.program(program)
  return p.out.join("")
}
