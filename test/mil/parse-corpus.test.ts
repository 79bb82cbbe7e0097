/** Conformance: every `.mil` file under shared/corpus parses cleanly and survives print → parse in both styles. */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { equalIgnoringPositions, type Literal, type Operation, type Program } from "../../src/mil/ast.js"
import { parse } from "../../src/mil/parser.js"
import { print } from "../../src/mil/printer.js"

const corpus = process.env.MIL_CORPUS ?? fileURLToPath(new URL("../../../shared/corpus", import.meta.url))

const walk = (dir: string): Array<string> =>
  readdirSync(dir).sort().flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".mil") ? [p] : []
  })

const files = walk(corpus)
const read = (rel: string) => readFileSync(join(corpus, rel), "utf8")
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
    // INDEX.md lists 62 files today; more may be added.
    expect(files.length).toBeGreaterThanOrEqual(62)
  })

  describe.each(files.map((f) => [relative(corpus, f)]))("%s", (rel) => {
    const text = readFileSync(join(corpus, rel), "utf8")
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
    const w = mustParse("joshuaswarren__mil-hwx-compiler/tests/fixtures/w8a8_conv_chain.mil")
    const qs = attr(findOp(w, "qs"), "val")
    expect(qs?.kind === "typed" && qs.literal).toMatchObject({ kind: "number", text: "0x1p-3", value: 0.125 })
    const w1 = findOp(w, "W1")
    expect(w1.op).toBe("constexpr_affine_dequantize")
    expect(w1.args).toEqual([])
    expect(w1.attributes.map((a) => a.name)).toEqual(["axis", "name", "quantized_data", "scale", "zero_point"])
    const q = attr(w1, "quantized_data")
    expect(q?.kind).toBe("blob")
    if (q?.kind !== "blob") return
    expect(q.offset).toBe(4224n)
    expect(q.path).toBe("@model_path/weights/weight.bin")
    expect(q.type).toMatchObject({ kind: "tensor", dtype: "int8", shape: [64, 64, 1, 1] })
    expect(q.pathType).toMatchObject({ kind: "scalar", dtype: "string" })
    const pre = mustParse("FluidInference__mobius/models/vad/silero-vad/coreml/compiled/unified_mixed.mlmodelc/model.mil")
    const infs = ops(pre).flatMap((o) => {
      const v = attr(o, "val")
      return v?.kind === "typed" && v.literal.kind === "number" && !Number.isFinite(v.literal.value) ? [v.literal] : []
    })
    expect(infs.length).toBeGreaterThan(0)
    expect(infs.every((l: Literal) => l.kind === "number" && l.text === "-inf" && l.value === -Infinity)).toBe(true)
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

  it("reads arguments spread over several lines (d2s) with node positions", () => {
    const p = mustParse("joshuaswarren__mil-hwx-compiler/tests/fixtures/d2s.mil")
    const op = findOp(p, "y")
    expect(op.op).toBe("depth_to_space")
    expect(op.pos).toMatchObject({ line: 6, col: 5 })
    expect(op.args[1]!.pos).toMatchObject({ line: 8, col: 7 })
  })
})
