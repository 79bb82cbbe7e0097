/** Grammar features of the MIL parser, one small program each, with hand-written expected trees. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { equalIgnoringPositions, type Literal, type Operation, type Program, type Value } from "../../src/mil/ast.js"
import { numberValue } from "../../src/mil/lexer.js"
import { parse, parseEffect } from "../../src/mil/parser.js"
import { print } from "../../src/mil/printer.js"
import { CompileError } from "../../src/schema/errors.js"

/** Wraps op lines in a minimal program. */
const prog = (body: string, header = "program(1.3)\n{\n  func main<ios18>(tensor<fp16, [1]> x) {\n") =>
  `${header}${body}\n  } -> (x);\n}\n`

const ok = (text: string): Program => {
  const r = parse(text)
  expect(r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([])
  return r.program!
}
const firstOp = (text: string): Operation => ok(prog(text)).functions[0]!.body.operations[0]!
const valOf = (op: Operation): Value => op.attributes.find((a) => a.name === "val")!.value
const lit = (v: Value): Literal => {
  if (v.kind !== "typed") throw new Error(`not a typed value: ${v.kind}`)
  return v.literal
}
/** Drops `pos` fields so trees compare against hand-written objects. */
const strip = (u: unknown): unknown =>
  Array.isArray(u)
    ? u.map(strip)
    : typeof u === "object" && u !== null
    ? Object.fromEntries(Object.entries(u).filter(([k]) => k !== "pos").map(([k, v]) => [k, strip(v)]))
    : u

describe("parse: program header", () => {
  it.each(["1.0", "1.3", "1"])("keeps the version text program(%s)", (v) => {
    const p = ok(`program(${v})\n{\n  func main<ios15>() {\n  } -> ();\n}`)
    expect(p.version).toBe(v)
    expect(p.attributes).toEqual([])
    expect(p.functions[0]!.inputs).toEqual([])
    expect(p.functions[0]!.body.outputs).toEqual([])
  })

  it("reads both buildInfo spellings", () => {
    const a = ok(`program(1.3)\n[buildInfo = dict<string, string>({{"a", "1"}, {"b", ""}})]\n{\n}`)
    expect(strip(a.attributes[0]!.value)).toEqual({
      kind: "typed",
      type: { kind: "dict", key: { kind: "scalar", dtype: "string" }, value: { kind: "scalar", dtype: "string" } },
      literal: {
        kind: "dict",
        entries: [
          [{ kind: "string", value: "a" }, { kind: "string", value: "1" }],
          [{ kind: "string", value: "b" }, { kind: "string", value: "" }]
        ]
      }
    })
    const b = ok(`program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>({})]\n{\n}`)
    expect(strip(b.attributes[0]!.value)).toEqual({
      kind: "typed",
      type: {
        kind: "dict",
        key: { kind: "tensor", dtype: "string", shape: [] },
        value: { kind: "tensor", dtype: "string", shape: [] }
      },
      literal: { kind: "dict", entries: [] }
    })
  })

  it("reads several functions with any opset name, or none", () => {
    const p = ok(`program(1.3)\n{\n  func a<CoreML8>(int32 n) {\n  } -> (n);\n  func b(bool f) {\n  } -> (f);\n}`)
    expect(p.functions.map((f) => [f.name, f.opset])).toEqual([["a", "CoreML8"], ["b", null]])
    expect(strip(p.functions[1]!.inputs)).toEqual([{ name: "f", type: { kind: "scalar", dtype: "bool" } }])
  })
})

describe("parse: types", () => {
  it("reads fixed, unknown and symbolic dims, unranked tensors and state/list/tuple types", () => {
    const p = ok(prog(
      "    tensor<fp32, [2, ?, is0]> a, tensor<fp32> b, state<tensor<fp16, [1, 4]>> c, list<tensor<int32, []>, ?> d, " +
        "tuple<int32, fp16> e, tensor<bool, *> f = thing(x = x)[name = string(\"t\")];"
    ))
    expect(strip(p.functions[0]!.body.operations[0]!.outputs.map((o) => o.type))).toEqual([
      { kind: "tensor", dtype: "fp32", shape: [2, "?", { symbol: "is0" }] },
      { kind: "tensor", dtype: "fp32", shape: null },
      { kind: "state", inner: { kind: "tensor", dtype: "fp16", shape: [1, 4] } },
      { kind: "list", elem: { kind: "tensor", dtype: "int32", shape: [] }, length: "?" },
      { kind: "tuple", elems: [{ kind: "scalar", dtype: "int32" }, { kind: "scalar", dtype: "fp16" }] },
      { kind: "tensor", dtype: "bool", shape: null }
    ])
  })
})

describe("parse: literals", () => {
  it.each([
    ["1", 1],
    ["-7", -7],
    ["2.5", 2.5],
    ["1e-6", 1e-6],
    ["-1.5E+3", -1500],
    ["0x1.8p-3", 0.1875],
    ["-0x0p+0", -0],
    ["0x1p-24", 2 ** -24],
    ["0x1.fffffep+127", 3.4028234663852886e38],
    ["inf", Infinity],
    ["-inf", -Infinity],
    ["nan", NaN]
  ])("number %s keeps its text and value", (text, value) => {
    const l = lit(valOf(firstOp(`    fp32 c = const()[name = string("c"), val = fp32(${text})];`)))
    expect(l.kind).toBe("number")
    if (l.kind !== "number") return
    expect(l.text).toBe(text)
    expect(Object.is(l.value, value) || (Number.isNaN(value) && Number.isNaN(l.value))).toBe(true)
  })

  it("numberValue reads the same spellings as the parser", () => {
    expect([numberValue("-inf"), numberValue("Infinity"), numberValue("0x1.8p-3"), numberValue("-12"), numberValue("2e3")])
      .toEqual([-Infinity, Infinity, 0.1875, -12, 2000])
    expect(Number.isNaN(numberValue("nan"))).toBe(true)
    expect(Object.is(numberValue("-0x0p+0"), -0)).toBe(true)
  })

  it("decodes string escapes", () => {
    const l = lit(valOf(firstOp(String.raw`    string s = const()[val = string("a\"b\\c\nd\te\u00e9\x41")];`)))
    expect(l).toMatchObject({ kind: "string", value: "a\"b\\c\nd\te\u00e9A" })
  })

  it("reads bools, nested lists, a bracket-less one-element tensor and rank-0 tensors", () => {
    const op = firstOp(
      "    tensor<bool, [2, 2]> m = const()[val = tensor<bool, [2, 2]>([[true, false], [false, true]])];"
    )
    expect(strip(lit(valOf(op)))).toEqual({
      kind: "list",
      items: [
        { kind: "list", items: [{ kind: "bool", value: true }, { kind: "bool", value: false }] },
        { kind: "list", items: [{ kind: "bool", value: false }, { kind: "bool", value: true }] }
      ]
    })
    expect(strip(valOf(firstOp("    tensor<int32, [1]> a = const()[val = tensor<int32, [1]>(-1)];")))).toEqual({
      kind: "typed",
      type: { kind: "tensor", dtype: "int32", shape: [1] },
      literal: { kind: "number", text: "-1", value: -1 }
    })
    expect(strip(valOf(firstOp("    tensor<int32, []> a = const()[val = tensor<int32, []>(2)];")))).toMatchObject({
      type: { kind: "tensor", dtype: "int32", shape: [] }
    })
  })

  it("reads BLOBFILE in both path/offset spellings", () => {
    const a = valOf(firstOp(
      "    tensor<fp16, [4]> w = const()[val = tensor<fp16, [4]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];"
    ))
    expect(strip(a)).toEqual({
      kind: "blob",
      type: { kind: "tensor", dtype: "fp16", shape: [4] },
      pathType: { kind: "scalar", dtype: "string" },
      path: "@model_path/weights/weight.bin",
      offsetType: { kind: "scalar", dtype: "uint64" },
      offset: 64n
    })
    const b = valOf(firstOp(
      "    tensor<fp16, [4]> w = const()[val = tensor<fp16, [4]>(BLOBFILE(path = tensor<string, []>(\"@model_path/w.bin\"), offset = tensor<uint64, []>(18446744073709551615)))];"
    ))
    expect(strip(b)).toMatchObject({
      kind: "blob",
      pathType: { kind: "tensor", dtype: "string", shape: [] },
      offsetType: { kind: "tensor", dtype: "uint64", shape: [] },
      offset: 18446744073709551615n
    })
  })
})

describe("parse: operations", () => {
  it("reads named arguments, tuples, refs and both name-attribute spellings", () => {
    const op = firstOp(
      "    tensor<fp16, [2]> y = concat(axis = int32(0), interleave = false, values = (x, x))[name = tensor<string, []>(\"cat\")];"
    )
    expect(op.op).toBe("concat")
    expect(strip(op.args)).toEqual([
      { name: "axis", value: { kind: "typed", type: { kind: "scalar", dtype: "int32" }, literal: { kind: "number", text: "0", value: 0 } } },
      { name: "interleave", value: { kind: "ref", name: "false" } },
      { name: "values", value: { kind: "tuple", items: [{ kind: "ref", name: "x" }, { kind: "ref", name: "x" }] } }
    ])
    const n = op.attributes[0]!
    expect(n.name).toBe("name")
    expect(strip(n.value)).toMatchObject({ type: { kind: "tensor", dtype: "string", shape: [] }, literal: { value: "cat" } })
  })

  it("reads multi-output ops and ops without an attribute block", () => {
    const op = firstOp("    tensor<fp16, [1]> a, tensor<fp16, [1]> b = split(x = x, num_splits = int32(2));")
    expect(op.outputs.map((o) => o.name)).toEqual(["a", "b"])
    expect(op.attributes).toEqual([])
  })

  it("reads an op with no results (write_state) and prints it back without '='", () => {
    const op = firstOp('    write_state(data = x, input = x)[name = string("w")];')
    expect(op.op).toBe("write_state")
    expect(op.outputs).toEqual([])
    expect(op.args.map((a) => a.name)).toEqual(["data", "input"])
    const text = prog('    write_state(data = x, input = x)[name = string("w")];')
    for (const style of ["apple", "compact"] as const) {
      const printed = print(ok(text), { style })
      expect(printed).not.toMatch(/=\s*write_state/)
      expect(equalIgnoringPositions(ok(printed), ok(text))).toBe(true)
    }
  })

  it("reads cond with two blocks and while_loop with block inputs", () => {
    const p = ok(prog([
      "    tensor<fp16, [1]> y = cond(pred = p)[name = string(\"y\")] {",
      "        tensor<fp16, [1]> a = add(x = x, y = x)[name = string(\"a\")];",
      "    } -> (a) {",
      "        tensor<fp16, [1]> b = sub(x = x, y = x)[name = string(\"b\")];",
      "    } -> (b);",
      "    int32 n, tensor<fp16, [1]> z = while_loop(loop_vars = (i0, x))[name = string(\"w\")] (int32 ic, tensor<fp16, [1]> xc) {",
      "        bool c = less(x = ic, y = int32(10))[name = string(\"c\")];",
      "    } -> (c) (int32 ib, tensor<fp16, [1]> xb) {",
      "        int32 nb = add(x = ib, y = int32(1))[name = string(\"inc\")];",
      "    } -> (nb, xb);"
    ].join("\n")))
    const [c, w] = p.functions[0]!.body.operations
    expect(c!.blocks.map((b) => [b.params.length, b.operations.map((o) => o.op), b.outputs])).toEqual([
      [0, ["add"], ["a"]],
      [0, ["sub"], ["b"]]
    ])
    expect(w!.outputs.map((o) => o.name)).toEqual(["n", "z"])
    expect(w!.blocks.map((b) => [b.params.map((x) => x.name), b.operations.map((o) => o.op), b.outputs])).toEqual([
      [["ic", "xc"], ["less"], ["c"]],
      [["ib", "xb"], ["add"], ["nb", "xb"]]
    ])
  })

  it("records 1-based line/col and 0-based offsets of nodes", () => {
    const text = "program(1.3)\n{\n  func main<ios18>(tensor<fp16, [1]> x) {\n    tensor<fp16, [1]> y = relu(x = x);\n  } -> (y);\n}\n"
    const p = ok(text)
    const f = p.functions[0]!
    expect(p.pos).toEqual({ line: 1, col: 1, offset: 0 })
    expect(f.pos).toEqual({ line: 3, col: 3, offset: text.indexOf("func") })
    expect(f.inputs[0]!.pos).toEqual({ line: 3, col: 20, offset: text.indexOf("tensor<fp16, [1]> x") })
    const op = f.body.operations[0]!
    expect(op.pos).toEqual({ line: 4, col: 5, offset: text.indexOf("    tensor<fp16, [1]> y") + 4 })
    expect(op.args[0]!.pos).toEqual({ line: 4, col: 32, offset: text.indexOf("x = x") })
  })

  it("accepts comments, CRLF line ends and compact spacing", () => {
    const p = ok("program(1.3)\r\n// generated\r\n{\r\n func main<ios18>(tensor<fp16, [1,2]> x){\r\n  tensor<fp16, [1,2]> y=relu(x=x)[name=string(\"r\")];// tail\r\n }->(y);\r\n}")
    expect(p.functions[0]!.body.operations[0]!.op).toBe("relu")
  })
})

describe("parseEffect", () => {
  it.effect("succeeds with the program", () =>
    Effect.gen(function*() {
      const p = yield* parseEffect(prog("    tensor<fp16, [1]> y = relu(x = x);"))
      expect(p.functions[0]!.body.operations[0]!.op).toBe("relu")
    }))

  it.effect("fails with a CompileError carrying the syntax diagnostics and the file", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(parseEffect("program(1.3)\n{\n  func main<ios18>( {\n", { file: "bad.mil" }))
      expect(Exit.isFailure(exit)).toBe(true)
      const err = yield* Effect.flip(parseEffect("program(1.3)\n{\n  func main<ios18>( {\n", { file: "bad.mil" }))
      expect(err).toBeInstanceOf(CompileError)
      expect(err.model).toBe("bad.mil")
      expect(err.diagnostics.length).toBeGreaterThan(0)
      expect(err.diagnostics[0]).toMatchObject({ kind: "syntax", code: "MIL-SYNTAX", file: "bad.mil", line: 3, col: 21 })
      expect(err.message).toContain("bad.mil:3:21")
    }))
})
