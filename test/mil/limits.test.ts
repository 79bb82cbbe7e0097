/**
 * Declared sizes never size an allocation: dims are exact integers ≥ 1, splats stay one value, counts are bounded
 * by what the op declares, and element counts are exact (BigInt) however large the shape.
 */
import { describe, expect, it } from "@effect/vitest"
import { analyze } from "../../src/mil/analyze.js"
import { check, TypeCodes } from "../../src/mil/check.js"
import { inspect } from "../../src/mil/inspect.js"
import { parse } from "../../src/mil/parser.js"
import { checkBody, errors, milProgram, parseOk, shapeIn } from "./milText.js"

/** Line 4 holds the function header `    func main<ios18>(` (milProgram). */
const headerCol = "    func main<ios18>(".length + 1

describe("dimension literals", () => {
  for (const dim of ["9007199254740993", "18446744073709551616", "99999999999999999999999999999999999999999999"]) {
    it(`${dim.slice(0, 20)}… is a syntax error at its column, never rounded`, () => {
      const prefix = "tensor<fp16, [1, "
      const r = parse(milProgram(`${prefix}${dim}, 1, 1]> x`, "tensor<fp16, [1, 1, 1, 1]> y = relu(x = x);"))
      expect(r.program).toBeNull()
      expect(r.diagnostics).toHaveLength(1)
      const d = r.diagnostics[0]!
      expect([d.kind, d.line, d.col]).toEqual(["syntax", 4, headerCol + prefix.length])
      expect(d.message).toContain("out of range")
    })
  }
  it("1e400 (Infinity as a double) is a syntax error at its column", () => {
    const prefix = "tensor<fp16, [1, "
    const r = parse(milProgram(`${prefix}1e400, 1, 1]> x`, "tensor<fp16, [1, 1, 1, 1]> y = relu(x = x);"))
    expect(r.program).toBeNull()
    expect([r.diagnostics[0]!.line, r.diagnostics[0]!.col]).toEqual([4, headerCol + prefix.length])
  })
  it("2^53 − 1 is still a dimension (the checker then refuses the element count)", () => {
    const r = parse(milProgram("tensor<fp16, [9007199254740991]> x", "tensor<fp16, [9007199254740991]> y = relu(x = x);"))
    expect(r.diagnostics).toEqual([])
  })
})

describe("dimension values in check", () => {
  it("a zero dimension is a type error where the type is written", () => {
    const r = checkBody("tensor<fp16, [1, 0, 1, 1]> x", "tensor<fp16, [1, 0, 1, 1]> y = relu(x = x);")
    const bad = errors(r).filter((d) => d.code === TypeCodes.badDimension)
    expect(bad.map((d) => [d.line, d.col])).toEqual([[4, headerCol], [5, 9]])
    expect(bad[0]!.message).toContain("dimension 1 expected a size of at least 1, found 0")
  })
  it("a zero dimension in a const's value type is reported too", () => {
    const r = checkBody("tensor<fp16, [1, 4]> x",
      "tensor<fp16, [0]> c = const()[name = string(\"c\"), val = tensor<fp16, [0]>([])];\n" +
        "tensor<fp16, [1, 4]> y = relu(x = x);")
    expect(errors(r).filter((d) => d.code === TypeCodes.badDimension)).toHaveLength(2)
  })
  it("an element count past 2^53 − 1 is a type error, counted exactly", () => {
    const r = checkBody("tensor<fp16, [4294967296, 4294967296]> x", "tensor<fp16, [4294967296, 4294967296]> y = relu(x = x);")
    const bad = errors(r).filter((d) => d.code === TypeCodes.badDimension)
    expect(bad).toHaveLength(2)
    expect(bad[0]!.message).toContain("found 18446744073709551616")
  })
})

describe("splats are never expanded", () => {
  const splat = (shape: string) => checkBody("tensor<fp16, [1, 4]> x",
    `tensor<fp16, ${shape}> c = const()[name = string("c"), val = tensor<fp16, ${shape}>(0x1p0)];\n` +
      "tensor<fp16, [1, 4]> y = relu(x = x);")
  it("a [1, 64, 1, 65536] splat is one value, not 4 Mi numbers", () => {
    const r = splat("[1, 64, 1, 65536]")
    expect(errors(r)).toEqual([])
    expect(r.functions.get("main")!.consts.get("c")).toEqual({ kind: "splat", dtype: "fp16", shape: [1, 64, 1, 65536], value: 1 })
  })
  it("a splat past 2^32 elements (an Invalid array length when expanded) checks without throwing", () => {
    const r = splat("[65536, 65536, 65536]")
    expect(errors(r)).toEqual([])
    const report = inspect(parseOk(milProgram("tensor<fp16, [1, 4]> x",
      "tensor<fp16, [65536, 65536, 65536]> c = const()[name = string(\"c\"), val = tensor<fp16, [65536, 65536, 65536]>(0x1p0)];\n" +
        "tensor<fp16, [1, 4]> y = relu(x = x);")))
    expect(report.functions[0]!.opCount).toBe(2)
  })
  it("a small splat still feeds the shape rules (reshape target)", () => {
    const r = checkBody("tensor<fp16, [2, 2]> x",
      "tensor<int32, [2]> s = const()[name = string(\"s\"), val = tensor<int32, [2]>(-1)];\n" +
        "tensor<fp16, [4]> y = reshape(x = x, shape = tensor<int32, [1]>(-1));")
    expect(errors(r)).toEqual([])
    expect(shapeIn(r, "y")).toEqual([4])
  })
  it("an identical repeated splat const is recognised as the same value", () => {
    const r = checkBody("tensor<fp16, [4]> x", `tensor<fp16, [4]> s = const()[name = string("s"), val = tensor<fp16, [4]>(2)];
      tensor<fp16, [4]> s = const()[name = string("s"), val = tensor<fp16, [4]>(2)];
      tensor<fp16, [4]> y = mul(x = x, y = s);`)
    expect(errors(r)).toEqual([])
  })
})

describe("counts are bounded before anything is built", () => {
  const noInternal = (r: ReturnType<typeof check>) =>
    expect(r.diagnostics.filter((d) => d.message.includes("internal"))).toEqual([])
  it("split(num_splits = 2^32) on an unknown axis: an output-count error, no array of 2^32 types", () => {
    const r = checkBody("tensor<fp16, [1, ?, 1, 1]> x",
      "tensor<fp16, [1, ?, 1, 1]> y, tensor<fp16, [1, ?, 1, 1]> z = split(x = x, num_splits = int32(4294967296), axis = int32(1));")
    noInternal(r)
    expect(errors(r).map((d) => [d.code, d.message])).toEqual([
      [TypeCodes.outputCount, "split: expected 4294967296 outputs, found 2 declared"]
    ])
  })
  it("split(num_splits = 2147483647) from a const: the same", () => {
    const r = checkBody("tensor<fp16, [1, ?, 1, 1]> x",
      "int32 n = const()[name = string(\"n\"), val = int32(2147483647)];\n" +
        "tensor<fp16, [1, ?, 1, 1]> y, tensor<fp16, [1, ?, 1, 1]> z = split(x = x, num_splits = n, axis = int32(1));")
    noInternal(r)
    expect(errors(r).map((d) => d.code)).toEqual([TypeCodes.outputCount])
  })
  it("split(num_splits = 0 or -2) is an invalid value", () => {
    for (const n of ["0", "-2"]) {
      const r = checkBody("tensor<fp16, [1, 4]> x",
        `tensor<fp16, [1, 2]> y, tensor<fp16, [1, 2]> z = split(x = x, num_splits = int32(${n}), axis = int32(1));`)
      noInternal(r)
      expect(errors(r)[0]!.message).toBe(`split: num_splits expected ≥ 1, found ${n}`)
    }
  })
  it("reshape to a run-time shape vector of 10^12 entries: rank unknown, no array of that length", () => {
    const r = checkBody("tensor<fp16, [2, 2]> x, tensor<int32, [1000000000000]> s",
      "tensor<fp16, [4]> y = reshape(x = x, shape = s);")
    noInternal(r)
    expect(shapeIn(r, "y")).toEqual([4])
  })
  it("reshape to 2^64 elements: no inexact size is inferred", () => {
    const r = checkBody("tensor<fp16, [2, 2]> x", "tensor<fp16, [4]> y = reshape(x = x, shape = tensor<int32, [1]>([18446744073709551616]));")
    noInternal(r)
    expect(r.diagnostics.some((d) => d.message.includes("18446744073709552000"))).toBe(false)
  })
  it("range_1d of 1e300 steps of 1e-300: the length is unknown, never Infinity", () => {
    const r = checkBody("tensor<fp32, [1]> x",
      "tensor<fp32, [?]> y = range_1d(end = fp32(1e300), start = fp32(0), step = fp32(1e-300));")
    noInternal(r)
    expect(shapeIn(r, "y")).toEqual([null])
  })
  it("an inferred size that is no exact integer (upsample by 1e30) is an error, and the dim stays unknown", () => {
    const r = checkBody("tensor<fp16, [1, 2, 3, 4]> x",
      "tensor<fp16, [1, 2, ?, ?]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32(1e30), scale_factor_width = fp32(2));")
    expect(errors(r).map((d) => d.code)).toEqual([TypeCodes.badDimension])
    expect(errors(r)[0]!.message).toContain("dimension 2 inferred as 3.0000000000000003e+30")
    expect(shapeIn(r, "y")).toEqual([1, 2, null, 8])
    const report = inspect(parseOk(milProgram("tensor<fp16, [1, 2, 3, 4]> x",
      "tensor<fp16, [1, 2, ?, ?]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32(1e300), scale_factor_width = fp32(1e300));")))
    expect(report.functions[0]!.outputs[0]!.type).toBe("tensor<fp16, [1, 2, ?, ?]>")
  })
  it("analyze with every rule never throws on these programs", () => {
    const text = milProgram("tensor<fp16, [1, 65536, 1, 65536]> x",
      "tensor<fp16, [1, 65536, 1, 65536]> c = const()[name = string(\"c\"), val = tensor<fp16, [1, 65536, 1, 65536]>(0x1p0)];\n" +
        "tensor<fp16, [1, 65536, 1, 65536]> y = add(x = x, y = c);")
    expect(() => analyze(text)).not.toThrow()
  })
})
