/** Printer: exact text in both styles for hand-built programs, and reproduction of corpus files. */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import {
  type Binding, type Literal, noPos, type Operation, type Program, type TypeExpr, type Value
} from "../../src/mil/ast.js"
import { parse } from "../../src/mil/parser.js"
import { print, quoteString } from "../../src/mil/printer.js"
import { corpusPath } from "../corpus/corpus.js"

const pos = noPos
const tensor = (dtype: string, shape: Array<number | "?">): TypeExpr =>
  ({ kind: "tensor", dtype, shape, pos })
const scalar = (dtype: string): TypeExpr => ({ kind: "scalar", dtype, pos })
const num = (text: string): Literal => ({ kind: "number", text, value: Number(text), pos })
const str = (value: string): Value => ({ kind: "typed", type: scalar("string"), literal: { kind: "string", value, pos }, pos })
const ref = (name: string): Value => ({ kind: "ref", name, pos })
const bind = (name: string, type: TypeExpr): Binding => ({ name, type, pos })
const op = (
  outputs: Array<Binding>, name: string, args: Array<[string, Value]>, attrs: Array<[string, Value]>
): Operation => ({
  outputs,
  op: name,
  args: args.map(([n, value]) => ({ name: n, value, pos })),
  attributes: attrs.map(([n, value]) => ({ name: n, value, pos })),
  blocks: [],
  pos
})

const sample: Program = {
  version: "1.3",
  attributes: [{
    name: "buildInfo",
    value: {
      kind: "typed",
      type: { kind: "dict", key: scalar("string"), value: scalar("string"), pos },
      literal: { kind: "dict", entries: [[{ kind: "string", value: "k", pos }, { kind: "string", value: "v", pos }]], pos },
      pos
    },
    pos
  }],
  functions: [{
    name: "main",
    opset: "ios18",
    inputs: [bind("x", tensor("fp16", [1, 4]))],
    attributes: [],
    body: {
      params: [],
      operations: [
        op([bind("s", tensor("int32", [2]))], "const", [], [
          ["name", str("s")],
          ["val", { kind: "typed", type: tensor("int32", [2]), literal: { kind: "list", items: [num("1"), num("4")], pos }, pos }]
        ]),
        op([bind("w", tensor("fp16", [1, 4]))], "const", [], [
          ["name", str("w")],
          ["val", {
            kind: "blob",
            type: tensor("fp16", [1, 4]),
            pathType: scalar("string"),
            path: "@model_path/weights/weight.bin",
            offsetType: scalar("uint64"),
            offset: 64n,
            pos
          }]
        ]),
        op([bind("y", tensor("fp16", [1, 4]))], "concat", [
          ["axis", { kind: "typed", type: scalar("int32"), literal: num("0"), pos }],
          ["values", { kind: "tuple", items: [ref("x"), ref("w")], pos }]
        ], [["name", str("cat")]]),
        op([bind("z", tensor("fp16", [1, 4]))], "relu", [["x", ref("y")]], [])
      ],
      outputs: ["z"],
      pos
    },
    pos
  }],
  pos
}

describe("print", () => {
  it("writes Apple's spaced layout", () => {
    expect(print(sample)).toBe([
      "program(1.3)",
      "[buildInfo = dict<string, string>({{\"k\", \"v\"}})]",
      "{",
      "    func main<ios18>(tensor<fp16, [1, 4]> x) {",
      "            tensor<int32, [2]> s = const()[name = string(\"s\"), val = tensor<int32, [2]>([1, 4])];",
      "            tensor<fp16, [1, 4]> w = const()[name = string(\"w\"), val = tensor<fp16, [1, 4]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];",
      "            tensor<fp16, [1, 4]> y = concat(axis = int32(0), values = (x, w))[name = string(\"cat\")];",
      "            tensor<fp16, [1, 4]> z = relu(x = y);",
      "        } -> (z);",
      "}"
    ].join("\n"))
  })

  it("writes the compact layout of the Go generators", () => {
    expect(print(sample, { style: "compact" })).toBe([
      "program(1.3)",
      "[buildInfo = dict<string, string>({{\"k\", \"v\"}})]",
      "{",
      "    func main<ios18>(tensor<fp16, [1, 4]> x) {",
      "        tensor<int32, [2]> s = const()[name=string(\"s\"), val=tensor<int32, [2]>([1,4])];",
      "        tensor<fp16, [1,4]> w = const()[name=string(\"w\"), val=tensor<fp16, [1,4]>(BLOBFILE(path=string(\"@model_path/weights/weight.bin\"), offset=uint64(64)))];",
      "        tensor<fp16, [1,4]> y = concat(axis=int32(0),values=(x,w))[name=string(\"cat\")];",
      "        tensor<fp16, [1,4]> z = relu(x=y);",
      "    } -> (z);",
      "}",
      ""
    ].join("\n"))
  })

  it("writes nested blocks with their inputs and outputs", () => {
    const text = [
      "program(1.3)",
      "{",
      "    func main<ios18>(int32 n) {",
      "            int32 r = while_loop(loop_vars = (n)) (int32 a) {",
      "                    bool c = less(x = a, y = int32(9));",
      "                } -> (c) (int32 b) {",
      "                    int32 d = add(x = b, y = int32(1));",
      "                } -> (d);",
      "        } -> (r);",
      "}"
    ].join("\n")
    const p = parse(text).program
    expect(p).not.toBeNull()
    expect(print(p!)).toBe(text)
  })

  it("escapes strings so they read back", () => {
    expect(quoteString("a\"b\\c\nd\te\u0001é")).toBe("\"a\\\"b\\\\c\\nd\\te\\u0001é\"")
  })

  it.each([
    "FluidInference__FluidAudio/Models/ParakeetEOU/Streaming/1280ms/joint_decision.mlmodelc/model.mil",
    "FluidInference__mobius/models/vad/silero-vad/coreml/compiled/unified_256ms_palette_4bit.mlmodelc/model.mil"
  ])("reproduces Apple-compiled %s byte for byte", (rel) => {
    const text = readFileSync(corpusPath(rel), "utf8")
    expect(print(parse(text).program!)).toBe(text)
  })

  it("reproduces a Go compact-style fixture byte for byte", () => {
    const text = readFileSync(corpusPath("christopherkarani__Espresso/Tests/MILGeneratorTests/Fixtures/ffn_bwd.mil"), "utf8")
    expect(print(parse(text).program!, { style: "compact" })).toBe(text)
  })
})
