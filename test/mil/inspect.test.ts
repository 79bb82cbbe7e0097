/** The program summary: I/O, histogram, weights and FLOPs worked out by hand. */
import { describe, expect, it } from "@effect/vitest"
import { formatInspectReport, inspect } from "../../src/mil/inspect.js"
import { milProgram, parseOk } from "./milText.js"

const blob = (type: string, offset: number) =>
  `${type}(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(${offset})))`

// conv 1×1 64 → 128 over 256 positions, matmul [128, 256]·[256, 32], linear 32 → 10 on 128 rows.
const text = milProgram("tensor<fp16, [1, 64, 1, 256]> x, tensor<fp16, [1, 1, 256, 32]> k", `
  tensor<fp16, [128, 64, 1, 1]> W = const()[name = string("W"), val = ${blob("tensor<fp16, [128, 64, 1, 1]>", 64)}];
  tensor<fp16, [1, 128, 1, 256]> c = conv(pad_type = string("valid"), weight = W, x = x);
  tensor<int32, [4]> sh = const()[name = string("sh"), val = tensor<int32, [4]>([1, 1, 128, 256])];
  tensor<fp16, [1, 1, 128, 256]> r = reshape(shape = sh, x = c);
  bool f = const()[name = string("f"), val = bool(false)];
  tensor<fp16, [1, 1, 128, 32]> m = matmul(transpose_x = f, transpose_y = f, x = r, y = k);
  tensor<fp16, [10, 32]> L = const()[name = string("L"), val = ${blob("tensor<fp16, [10, 32]>", 16512)}];
  tensor<int8, [3]> q = const()[name = string("q"), val = ${blob("tensor<int8, [3]>", 17280)}];
  tensor<fp16, [1, 1, 128, 10]> y = linear(weight = L, x = m);`, "y, m")

describe("inspect", () => {
  const report = inspect(parseOk(text))
  const fn = report.functions[0]

  it("lists functions with their inputs and outputs", () => {
    expect(report.version).toBe("1.3")
    expect(fn.name).toBe("main")
    expect(fn.opset).toBe("ios18")
    expect(fn.inputs.map((i) => [i.name, i.type])).toEqual([
      ["x", "tensor<fp16, [1, 64, 1, 256]>"],
      ["k", "tensor<fp16, [1, 1, 256, 32]>"]
    ])
    expect(fn.outputs.map((o) => [o.name, o.dtype, o.shape])).toEqual([
      ["y", "fp16", [1, 1, 128, 10]],
      ["m", "fp16", [1, 1, 128, 32]]
    ])
  })

  it("counts ops, most frequent first", () => {
    expect(fn.opCount).toBe(9)
    expect(report.histogram).toEqual([
      { op: "const", count: 5 },
      { op: "conv", count: 1 },
      { op: "linear", count: 1 },
      { op: "matmul", count: 1 },
      { op: "reshape", count: 1 }
    ])
  })

  it("lists BLOBFILE weights with their byte sizes", () => {
    expect(report.weights).toEqual([
      { name: "W", function: "main", path: "@model_path/weights/weight.bin", offset: 64, dtype: "fp16",
        shape: [128, 64, 1, 1], bytes: 16384 },
      { name: "L", function: "main", path: "@model_path/weights/weight.bin", offset: 16512, dtype: "fp16",
        shape: [10, 32], bytes: 640 },
      { name: "q", function: "main", path: "@model_path/weights/weight.bin", offset: 17280, dtype: "int8",
        shape: [3], bytes: 3 }
    ])
    expect(report.weightBytes).toBe(16384 + 640 + 3)
  })

  it("estimates FLOPs: 2·MACs for conv, matmul and linear", () => {
    const conv = 2 * 64 * 128 * 256 // 4,194,304
    const matmul = 2 * 128 * 256 * 32 // 2,097,152
    const linear = 2 * 128 * 32 * 10 // 81,920
    expect(fn.flops.byOp).toEqual({ conv, matmul, linear })
    expect(report.flops.total).toBe(conv + matmul + linear)
    expect(report.flops.unknown).toBe(0)
  })

  it("counts ops whose shapes are unknown separately", () => {
    const dyn = inspect(parseOk(milProgram("tensor<fp16, [?, 8]> a, tensor<fp16, [8, 4]> b",
      "tensor<fp16, [?, 4]> y = matmul(x = a, y = b);")))
    expect(dyn.flops).toEqual({ total: 0, byOp: {}, unknown: 1 })
  })

  it("formats a readable report", () => {
    const s = formatInspectReport(report)
    expect(s).toContain("func main<ios18>: 9 ops, 6.37 MFLOPs")
    expect(s).toContain("  in  x: tensor<fp16, [1, 64, 1, 256]>")
    expect(s).toContain("W: fp16 [128, 64, 1, 1] 16384 bytes at @model_path/weights/weight.bin +64")
  })
})
