/** Typical MIL mistakes: each gives a syntax diagnostic at the expected line/col with a message that says what to fix. */
import { describe, expect, it } from "@effect/vitest"
import { parse } from "../../src/mil/parser.js"

// Line 1 program, line 2 '{', line 3 the function header; body lines start at line 4.
const prog = (body: string) =>
  `program(1.3)\n{\n  func main<ios18>(tensor<fp16, [1]> x) {\n${body}\n  } -> (x);\n}\n`

interface Case {
  readonly name: string
  readonly text: string
  readonly line: number
  readonly col: number
  readonly message: ReadonlyArray<string>
}

const cases: ReadonlyArray<Case> = [
  {
    name: "missing ')' closing an argument list",
    text: prog("    tensor<fp16, [1]> y = conv(x = x, weight = w;"),
    line: 4,
    col: 49,
    message: ["expected ')' to close the argument list of conv opened at 4:31, found ';'"]
  },
  {
    name: "missing ';' at the end of a statement (reported where it belongs)",
    text: prog("    tensor<fp16, [1]> y = relu(x = x)[name = string(\"r\")]\n    tensor<fp16, [1]> z = relu(x = y);"),
    line: 4,
    col: 58,
    message: ["expected ';' after the relu operation", "found 'tensor'"]
  },
  {
    name: "missing '=' between the result and the op",
    text: prog("    tensor<fp16, [1]> y relu(x = x);"),
    line: 4,
    col: 25,
    message: ["expected '=' or ',' after the result 'y', found 'relu'"]
  },
  {
    name: "untyped literal as an argument",
    text: prog("    tensor<fp16, [1]> y = relu(x = 3);"),
    line: 4,
    col: 36,
    message: ["expected a value for 'x' in the argument list of relu, found number 3", "literal needs its type"]
  },
  {
    name: "unterminated string",
    text: prog("    tensor<fp16, [1]> y = relu(x = x)[name = string(\"r)];"),
    line: 4,
    col: 53,
    message: ["unterminated string literal"]
  },
  {
    name: "unknown escape in a string",
    text: prog("    tensor<fp16, [1]> y = relu(x = x)[name = string(\"a\\qb\")];"),
    line: 4,
    col: 53,
    message: ["unknown escape '\\q'"]
  },
  {
    name: "missing '>' closing a tensor type",
    text: prog("    tensor<fp16, [1] y = relu(x = x);"),
    line: 4,
    col: 22,
    message: ["expected '>' to close the type tensor<...> opened at 4:11, found 'y'"]
  },
  {
    name: "missing ']' closing a shape",
    text: prog("    tensor<fp16, [1, 2> y = relu(x = x);"),
    line: 4,
    col: 23,
    message: ["expected ',' or ']' to close the shape opened at 4:18, found '>'"]
  },
  {
    name: "missing ',' between arguments",
    text: prog("    tensor<fp16, [1]> y = add(x = x y = x);"),
    line: 4,
    col: 37,
    message: ["expected ',' or ')' after 'x = ...' in the argument list of add, found 'y'"]
  },
  {
    name: "missing '=' in an attribute",
    text: prog("    tensor<fp16, [1]> y = relu(x = x)[name string(\"r\")];"),
    line: 4,
    col: 44,
    message: ["expected '=' after 'name' in the attribute block of relu, found 'string'"]
  },
  {
    name: "function body never closed",
    text: "program(1.3)\n{\n  func main<ios18>(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> y = relu(x = x);\n",
    line: 5,
    col: 1,
    message: ["expected '}' to close the body of function main opened at 3:41, found end of input"]
  },
  {
    name: "function without its '-> (outputs)'",
    text: "program(1.3)\n{\n  func main<ios18>(tensor<fp16, [1]> x) {\n  }\n}\n",
    line: 5,
    col: 1,
    message: ["expected '->' and the returned names after the body of function main, found '}'"]
  },
  {
    name: "no program header",
    text: "{\n  func main<ios18>() {\n  } -> ();\n}\n",
    line: 1,
    col: 1,
    message: ["expected 'program(<version>)' at the start of the MIL text, found '{'"]
  },
  {
    name: "stray character",
    text: prog("    tensor<fp16, [1]> y = relu(x = x) @;"),
    line: 4,
    col: 39,
    message: ["unexpected character '@'"]
  },
  {
    name: "BLOBFILE without an offset",
    text: prog("    tensor<fp16, [4]> w = const()[val = tensor<fp16, [4]>(BLOBFILE(path = string(\"@model_path/w.bin\")))];"),
    line: 4,
    col: 59,
    message: ["BLOBFILE needs offset = uint64(<byte offset>)"]
  },
  {
    name: "negative dimension",
    text: prog("    tensor<fp16, [-1]> y = relu(x = x);"),
    line: 4,
    col: 19,
    message: ["a dimension must be a non-negative integer, '?' or a symbol, found -1"]
  },
  {
    name: "text after the end of the program",
    text: "program(1.3)\n{\n}\nfunc",
    line: 4,
    col: 1,
    message: ["unexpected 'func' after the end of the program"]
  }
]

describe("syntax errors", () => {
  it.each(cases)("$name", (c) => {
    const r = parse(c.text, { file: "case.mil" })
    expect(r.program).toBeNull()
    expect(r.diagnostics.length).toBeGreaterThanOrEqual(1)
    const d = r.diagnostics[0]!
    expect({ line: d.line, col: d.col }).toEqual({ line: c.line, col: c.col })
    for (const m of c.message) expect(d.message).toContain(m)
    expect(d).toMatchObject({ kind: "syntax", severity: "error", code: "MIL-SYNTAX", file: "case.mil" })
  })

  it("recovers after a bad statement and reports the next one too", () => {
    const r = parse(prog([
      "    tensor<fp16, [1]> y = relu(x = 3);",
      "    tensor<fp16, [1]> z = relu(x = y);",
      "    tensor<fp16, [1] w = relu(x = z);"
    ].join("\n")))
    expect(r.program).toBeNull()
    expect(r.diagnostics.map((d) => [d.line, d.col])).toEqual([[4, 36], [6, 22]])
  })

  it("never throws on non-string or empty input", () => {
    expect(parse("").diagnostics[0]).toMatchObject({ line: 1, col: 1 })
    expect(parse("").diagnostics[0]!.message).toContain("found end of input")
    expect(parse(null as unknown as string).program).toBeNull()
  })

  it("stops deep nesting with a diagnostic instead of overflowing the stack", () => {
    const deep = prog(`    tensor<int32, [1]> c = const()[val = tensor<int32, [1]>(${"[".repeat(100_000)}1${"]".repeat(100_000)})];`)
    const r = parse(deep)
    expect(r.program).toBeNull()
    expect(r.diagnostics[0]!.message).toContain("nesting deeper than")
  })
})
