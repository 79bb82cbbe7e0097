/** Conformance: the whole MIL corpus parses cleanly and survives print → parse in both styles. */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { equalIgnoringPositions, type Literal, type Operation, type Program } from "../../src/mil/ast.js"
import { parse } from "../../src/mil/parser.js"
import { print } from "../../src/mil/printer.js"
import { corpusPath, milFiles } from "../corpus/corpus.js"
import { milProgram } from "./milText.js"

const files = milFiles()
const read = (rel: string) => readFileSync(corpusPath(rel), "utf8")
const mustParse = (rel: string): Program => {
  const r = parse(read(rel), { file: rel })
  expect(r.diagnostics).toEqual([])
  return r.program!
}
const ops = (p: Program): ReadonlyArray<Operation> => p.functions[0]!.body.operations
const findOp = (p: Program, result: string): Operation => {
  const op = ops(p).find((o) => o.outputs.some((b) => b.name === result))
  expect(op, `an op producing ${result}`).toBeDefined()
  return op!
}
const attr = (op: Operation, name: string) => op.attributes.find((a) => a.name === name)?.value

describe("MIL corpus", () => {
  it("finds the corpus files", () => {
    // test/corpus holds 56 programs (see its NOTICE.md); MIL_CORPUS may name a larger set.
    expect(files.length).toBeGreaterThanOrEqual(56)
  })

  describe.each(files.map((f) => [f]))("%s", (rel) => {
    const text = read(rel)
    it("parses with no diagnostics and round-trips in both styles", () => {
      const first = parse(text, { file: rel })
      expect(first.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([])
      expect(first.program).not.toBeNull()
      for (const style of ["apple", "compact"] as const) {
        const again = parse(print(first.program!, { style }))
        expect(again.diagnostics).toEqual([])
        expect(equalIgnoringPositions(first.program, again.program), style).toBe(true)
      }
    })
  })
})

describe("MIL corpus content", () => {
  it("reads Apple's add_model: version, buildInfo dict, opset, inputs and the rank-0 tensor name attribute", () => {
    const p = mustParse("apple__coremltools/coremltools/modelrunner/ModelRunner/add_model.mlmodelc/model.mil")
    expect(p.version).toBe("1.0")
    const bi = p.attributes[0]!
    expect(bi.name).toBe("buildInfo")
    expect(bi.value.kind).toBe("typed")
    if (bi.value.kind !== "typed" || bi.value.literal.kind !== "dict") throw new Error("buildInfo is not a dict")
    expect(bi.value.type.kind).toBe("dict")
    expect(bi.value.literal.entries).toHaveLength(5)
    const [k, v] = bi.value.literal.entries[4]!
    expect([k.kind === "string" && k.value, v.kind === "string" && v.value]).toEqual(["coremltools-version", "8.1"])
    const f = p.functions[0]!
    expect([f.name, f.opset, f.inputs.map((i) => i.name)]).toEqual(["main", "ios16", ["x", "y"]])
    const mul = ops(p)[0]!
    expect(mul.op).toBe("mul")
    expect(mul.args.map((a) => a.name)).toEqual(["x", "y"])
    const name = attr(mul, "name")
    expect(name?.kind === "typed" && name.type).toMatchObject({ kind: "tensor", dtype: "string", shape: [] })
    expect(name?.kind === "typed" && name.literal).toMatchObject({ kind: "string", value: "op_3_cast_fp16" })
    expect(f.body.outputs).toEqual(["var_3"])
    // Apple's own file prints back byte for byte (this copy also ends with a newline).
    expect(print(p) + "\n").toBe(read("apple__coremltools/coremltools/modelrunner/ModelRunner/add_model.mlmodelc/model.mil"))
  })

  it("keeps multi-output lstm, split and topk results with their types", () => {
    const p = mustParse("FluidInference__FluidAudio/Models/ParakeetEOU/Streaming/1280ms/streaming_encoder.mlmodelc/model.mil")
    const split = findOp(p, "x_19_split_cast_fp16_1")
    expect(split.op).toBe("split")
    expect(split.outputs.map((o) => o.name)).toEqual(["x_19_split_cast_fp16_0", "x_19_split_cast_fp16_1"])
    const j = mustParse("FluidInference__FluidAudio/Models/ParakeetEOU/Streaming/1280ms/joint_decision.mlmodelc/model.mil")
    const topk = findOp(j, "var_63_cast_fp16_cast_int16_1")
    expect(topk.op).toBe("topk")
    expect(topk.outputs[1]!.type).toMatchObject({ kind: "tensor", dtype: "uint16", shape: [1, 1, 1, 64] })
    const d = mustParse("FluidInference__FluidAudio/Models/ParakeetEOU/Streaming/1280ms/decoder.mlmodelc/model.mil")
    const lstm = ops(d).find((o) => o.op === "lstm")!
    expect(lstm.outputs).toHaveLength(3)
  })

  it("reads hex floats, -inf and BLOBFILE offsets", () => {
    const silero = "FluidInference__mobius/models/vad/silero-vad/coreml/compiled"
    const pal = mustParse(`${silero}/unified_256ms_palette_4bit.mlmodelc/model.mil`)
    const eps = attr(findOp(pal, "var_230_to_fp16"), "val")
    expect(eps?.kind === "typed" && eps.literal).toMatchObject({ kind: "number", text: "0x1p-24", value: 2 ** -24 })
    const int8 = mustParse(`${silero}/unified_int8.mlmodelc/model.mil`)
    const w = findOp(int8, "stft_forward_basis_to_fp16_quantized")
    expect(w.op).toBe("constexpr_affine_dequantize")
    expect(w.args).toEqual([])
    expect(w.attributes.map((a) => a.name)).toEqual(["axis", "name", "quantized_data", "scale", "zero_point"])
    const blobs = ["quantized_data", "zero_point", "scale"].map((n) => attr(w, n))
    expect(blobs.map((b) => b?.kind === "blob" ? b.offset : undefined)).toEqual([64n, 66176n, 66560n])
    const q = blobs[0]
    if (q?.kind !== "blob") return
    expect(q.path).toBe("@model_path/weights/weight.bin")
    expect(q.type).toMatchObject({ kind: "tensor", dtype: "int8", shape: [258, 1, 256] })
    expect(q.pathType).toMatchObject({ kind: "tensor", dtype: "string", shape: [] })
    const pre = mustParse(`${silero}/unified_mixed.mlmodelc/model.mil`)
    const infs = ops(pre).flatMap((o) => {
      const v = attr(o, "val")
      return v?.kind === "typed" && v.literal.kind === "number" && !Number.isFinite(v.literal.value) ? [v.literal] : []
    })
    expect(infs.length).toBeGreaterThan(0)
    expect(infs.every((l: Literal) => l.kind === "number" && l.text === "-inf" && l.value === -Infinity)).toBe(true)
  })

  it("reads a hex float with a fraction and a scalar BLOBFILE path (ios18 style)", () => {
    const p = parse(milProgram("tensor<fp16, [1, 64, 1, 64]> x", [
      "fp16 s = const()[name = string(\"s\"), val = fp16(0x1.8p-3)];",
      "tensor<fp16, [64, 64, 1, 1]> w = constexpr_affine_dequantize()[axis = int32(0), name = string(\"w\"), " +
        "quantized_data = tensor<int8, [64, 64, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), " +
        "offset = uint64(4224))), scale = s, zero_point = int8(0)];",
      "tensor<fp16, [1, 64, 1, 64]> y = mul(x = x, y = s)[name = string(\"y\")];"
    ].join("\n"))).program!
    expect(attr(findOp(p, "s"), "val")).toMatchObject({ literal: { kind: "number", text: "0x1.8p-3", value: 0.1875 } })
    const q = attr(findOp(p, "w"), "quantized_data")
    expect(q).toMatchObject({ kind: "blob", offset: 4224n, pathType: { kind: "scalar", dtype: "string" } })
  })

  it("reads ops with no attribute block and inline literal arguments (ironmill)", () => {
    const p = mustParse("jafreck__ironmill/test-q/base.mlmodelc/model.mil")
    expect(p.version).toBe("1.3")
    const mm = findOp(p, "Times212_Output_0")
    expect(mm.attributes).toEqual([])
    const tx = mm.args.find((a) => a.name === "transpose_x")!.value
    expect(tx.kind === "typed" && tx.literal).toMatchObject({ kind: "bool", value: false })
  })

  it("reads function attribute blocks with tuple literals and unknown dims", () => {
    const p = mustParse("FluidInference__FluidAudio/Sources/FluidAudio/Resources/OptimizationModels/TransposeEncoder.mlmodelc/model.mil")
    const f = p.functions[0]!
    expect(f.inputs[0]!.type).toMatchObject({ kind: "tensor", dtype: "fp16", shape: [1, "?", "?"] })
    expect(f.attributes.map((a) => a.name)).toEqual(["FlexibleShapeInformation"])
    const v = f.attributes[0]!.value
    expect(v.kind === "typed" && v.type.kind).toBe("tuple")
    expect(v.kind === "typed" && v.literal).toMatchObject({ kind: "list", tuple: true })
  })

  it("reads arguments spread over several lines with node positions", () => {
    const text = [
      "program(1.3)",
      "[buildInfo = dict<string, string>({})]",
      "{",
      "  func main<ios18>(tensor<fp16, [1, 64, 8, 8]> x) {",
      "    int32 b = const()[name = string(\"b\"), val = int32(2)];",
      "    tensor<fp16, [1, 16, 16, 16]> y = depth_to_space(",
      "      x = x,",
      "      block_size = b",
      "    )[name = string(\"y\")];",
      "  } -> (y);",
      "}"
    ].join("\n")
    const p = parse(text).program!
    const op = findOp(p, "y")
    expect(op.op).toBe("depth_to_space")
    expect(op.pos).toMatchObject({ line: 6, col: 5 })
    expect(op.args[1]!.pos).toMatchObject({ line: 8, col: 7 })
  })
})
