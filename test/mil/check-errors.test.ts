/** Negative tests: each diagnostic kind of the checker, with its code, position and expected/found message. */
import { describe, expect, it } from "@effect/vitest"
import { check, TypeCodes } from "../../src/mil/check.js"
import { checkBody, errors, milProgram, parseOk } from "./milText.js"

/** The body starts on line 5 of milProgram's text; statement k (1-based) sits on line 4 + k, indented 8. */
const line = (k: number) => 4 + k

describe("checker diagnostics", () => {
  it("undefined name: points at the reference", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = add(x = x, y = nope);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.undefinedName)
    expect(d.kind).toBe("type")
    expect(d.line).toBe(line(1))
    expect(d.col).toBe(9 + "tensor<fp16, [4]> y = add(x = x, y = ".length)
    expect(d.message).toContain("`nope`")
    expect(d.message).toMatch(/expected .*found|expected/)
  })
  it("duplicate definition of a value with a different type is an error", () => {
    const r = checkBody("tensor<fp16, [4]> x", `tensor<fp16, [4]> y = relu(x = x);
      tensor<fp16, [4]> y = sigmoid(x = x);`)
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.duplicateDefinition)
    expect(d.line).toBe(line(2))
    expect(d.message).toContain("found a second definition")
  })
  it("an identical repeated const is only a warning", () => {
    const r = checkBody("tensor<fp16, [4]> x", `fp16 s = const()[name = string("s"), val = fp16(2.0)];
      fp16 s = const()[name = string("s"), val = fp16(2.0)];
      tensor<fp16, [4]> y = mul(x = x, y = s);`)
    expect(errors(r)).toEqual([])
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([[TypeCodes.duplicateDefinition, "warning"]])
  })
  it("a duplicate function name is an error", () => {
    const one = milProgram("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = relu(x = x);")
    const fn = one.slice(one.indexOf("    func"), one.lastIndexOf("}"))
    const text = one.slice(0, one.lastIndexOf("}")) + fn + "}\n"
    const r = check(parseOk(text))
    expect(errors(r).map((d) => d.code)).toEqual([TypeCodes.duplicateDefinition])
    expect(errors(r)[0].message).toContain("duplicate function `main`")
  })
  it("unknown argument names the accepted ones", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = relu(x = x, alpha = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.unknownArgument)
    expect(d.message).toBe("relu: unexpected argument `alpha`: expected one of x")
  })
  it("missing required argument", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = add(x = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.missingArgument)
    expect(d.message).toContain("missing required argument `y`")
    expect(d.line).toBe(line(1))
  })
  it("wrong dtype: x and y of add must share a dtype", () => {
    const r = checkBody("tensor<fp16, [4]> x, tensor<fp32, [4]> z", "tensor<fp16, [4]> y = add(x = x, y = z);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.wrongDtype)
    expect(d.message).toBe("add: argument `y` expected dtype fp16 (the dtype of `x`), found fp32")
  })
  it("wrong dtype: sqrt of int32", () => {
    const r = checkBody("tensor<int32, [4]> x", "tensor<int32, [4]> y = sqrt(x = x);")
    expect(errors(r)[0].message).toBe("sqrt: argument `x` expected dtype fp16, fp32, found int32")
  })
  it("declared output dtype differs from the inferred one", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp32, [4]> y = relu(x = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.wrongDtype)
    expect(d.message).toBe("relu: output `y` expected dtype fp16 (inferred tensor<fp16, [4]>), found " +
      "tensor<fp32, [4]> declared")
  })
  it("declared output shape differs from the inferred one", () => {
    const r = checkBody("tensor<fp16, [2, 3]> x",
      "tensor<fp16, [2, 3]> y = transpose(perm = tensor<int32, [2]>([1, 0]), x = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.shapeMismatch)
    expect(d.message).toBe("transpose: output `y` expected shape [3, 2] (inferred), found [2, 3] declared")
    expect([d.line, d.col]).toEqual([line(1), 9])
  })
  it("incompatible broadcast names both shapes and the axis", () => {
    const r = checkBody("tensor<fp16, [1, 64, 1, 32]> x, tensor<fp16, [4]> w",
      "tensor<fp16, [1, 64, 1, 32]> y = mul(x = x, y = w);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.badBroadcast)
    expect(d.message).toContain("[1, 64, 1, 32]")
    expect(d.message).toContain("found 32 and 4")
  })
  it("matmul inner dimension mismatch", () => {
    const r = checkBody("tensor<fp16, [4, 8]> a, tensor<fp16, [7, 5]> b", "tensor<fp16, [4, 5]> y = matmul(x = a, y = b);")
    expect(errors(r)[0].message).toContain("inner dimensions expected equal")
  })
  it("reshape to a different element count", () => {
    const r = checkBody("tensor<fp16, [2, 3]> x", "tensor<fp16, [4, 2]> y = reshape(shape = tensor<int32, [2]>([4, 2]), x = x);")
    expect(errors(r)[0].message).toBe("reshape: cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)")
  })
  it("conv weight channels must be C_in / groups", () => {
    const r = checkBody("tensor<fp16, [1, 8, 4, 4]> x", `
      tensor<fp16, [16, 4, 1, 1]> W = const()[name = string("W"), val = tensor<fp16, [16, 4, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      tensor<fp16, [1, 16, 4, 4]> y = conv(groups = int32(4), pad_type = string("valid"), weight = W, x = x);`)
    expect(errors(r)[0].message).toContain("weight expected 2 input channels (C_in 8 / groups 4)")
  })
  it("undefined function output", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = relu(x = x);", "z")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.functionOutput)
    expect(d.message).toContain("returns `z`")
  })
  it("unknown op is a warning and keeps the declared type", () => {
    const r = checkBody("tensor<fp16, [4]> x", "tensor<fp16, [4]> y = frobnicate(x = x);")
    expect(errors(r)).toEqual([])
    expect(r.diagnostics.map((d) => [d.code, d.severity])).toEqual([[TypeCodes.unknownOp, "warning"]])
    expect(r.functions.get("main")?.types.get("y")).toEqual({ kind: "tensor", dtype: "fp16", shape: [4] })
  })
  it("a run-time value where a constant is required", () => {
    const r = checkBody("tensor<fp16, [2, 3]> x, tensor<int32, [2]> p", "tensor<fp16, [3, 2]> y = transpose(perm = p, x = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.wrongArgumentKind)
    expect(d.message).toContain("expected a compile-time constant, found a value computed at run time")
  })
  it("output count differs from what the op produces", () => {
    const r = checkBody("tensor<fp16, [4, 6]> x",
      "tensor<fp16, [4, 2]> a, tensor<fp16, [4, 2]> b = split(axis = int32(1), num_splits = int32(3), x = x);", "a, b")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.outputCount)
    expect(d.message).toBe("split: expected 3 outputs, found 2 declared")
  })
  it("axis out of range", () => {
    const r = checkBody("tensor<fp16, [4, 6]> x", "tensor<fp16, [4, 6]> y = softmax(axis = int32(2), x = x);")
    const [d] = errors(r)
    expect(d.code).toBe(TypeCodes.invalidValue)
    expect(d.message).toBe("softmax: axis expected in [-2, 1] for rank 2, found 2")
  })
  it("cumsum: axis out of range, a non-bool flag, and a declared shape that differs from x", () => {
    const axis = checkBody("tensor<fp16, [4, 6]> x", "tensor<fp16, [4, 6]> y = cumsum(axis = int32(-3), x = x);")
    expect(errors(axis)[0].message).toBe("cumsum: `axis` expected in [-2, 1] for rank 2, found -3")
    const flag = checkBody("tensor<fp16, [4, 6]> x", "tensor<fp16, [4, 6]> y = cumsum(axis = int32(1), reverse = int32(1), x = x);")
    expect(errors(flag).length).toBe(1)
    expect(errors(flag)[0].message).toContain("reverse")
    const shape = checkBody("tensor<fp16, [4, 6]> x", "tensor<fp16, [4, 5]> y = cumsum(axis = int32(1), x = x);")
    expect(errors(shape).length).toBe(1)
    const ok = checkBody("tensor<int32, [4, 6]> x", "tensor<int32, [4, 6]> y = cumsum(axis = int32(0), exclusive = bool(true), x = x);")
    expect(errors(ok)).toEqual([])
  })
  it("slice_update: the update must have the window's shape and x's dtype", () => {
    const body = (u: string) => `tensor<int32, [2]> b = const()[name = string("b"), val = tensor<int32, [2]>([0, 1])];
    tensor<int32, [2]> e = const()[name = string("e"), val = tensor<int32, [2]>([2, 4])];
    tensor<fp16, [4, 6]> y = slice_update(x = x, update = ${u}, begin = b, end = e);`
    const bad = checkBody("tensor<fp16, [4, 6]> x, tensor<fp16, [2, 2]> u", body("u"))
    expect(errors(bad)[0].message).toBe("slice_update: update expected shape [2, 3] (the slice), found [2, 2]")
    const dtype = checkBody("tensor<fp16, [4, 6]> x, tensor<fp32, [2, 3]> u", body("u"))
    expect(errors(dtype).length).toBe(1)
    const ok = checkBody("tensor<fp16, [4, 6]> x, tensor<fp16, [2, 3]> u", body("u"))
    expect(errors(ok)).toEqual([])
  })
  it("one_hot: a new axis of the vector size, the values' dtype, and bounds on both", () => {
    const decl = "tensor<int32, [3, 5]> i"
    const ok = checkBody(decl, "tensor<fp16, [3, 4, 5]> y = one_hot(indices = i, one_hot_vector_size = int32(4), axis = int32(1), " +
      "on_value = fp16(1), off_value = fp16(0));")
    expect(errors(ok)).toEqual([])
    const shape = checkBody(decl, "tensor<int32, [3, 5, 3]> y = one_hot(indices = i, one_hot_vector_size = int32(4));")
    expect(errors(shape).length).toBe(1)
    const axis = checkBody(decl, "tensor<int32, [3, 5, 4]> y = one_hot(indices = i, one_hot_vector_size = int32(4), axis = int32(3));")
    expect(errors(axis)[0].message).toBe("one_hot: `axis` expected in [-3, 2] for rank 3, found 3")
    const size = checkBody(decl, "tensor<int32, [3, 5, 0]> y = one_hot(indices = i, one_hot_vector_size = int32(0));")
    expect(errors(size).map((d) => d.message)).toContain("one_hot: one_hot_vector_size expected ≥ 1, found 0")
  })
  it("upsample_nearest_neighbor: output H and W scale, positive factors, rank ≥ 3", () => {
    const ok = checkBody("tensor<fp16, [1, 2, 3, 4]> x",
      "tensor<fp16, [1, 2, 6, 10]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32(2), scale_factor_width = fp32(2.5));")
    expect(errors(ok)).toEqual([])
    const shape = checkBody("tensor<fp16, [1, 2, 3, 4]> x",
      "tensor<fp16, [1, 2, 6, 8]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32(2), scale_factor_width = fp32(3));")
    expect(errors(shape).length).toBe(1)
    const zero = checkBody("tensor<fp16, [1, 2, 3, 4]> x",
      "tensor<fp16, [1, 2, 3, 4]> y = upsample_nearest_neighbor(x = x, scale_factor_height = fp32(0));")
    expect(errors(zero)[0].message).toBe("upsample_nearest_neighbor: `scale_factor_height` expected > 0, found 0")
    const rank = checkBody("tensor<fp16, [4, 4]> x", "tensor<fp16, [4, 4]> y = upsample_nearest_neighbor(x = x);")
    expect(errors(rank)[0].message).toContain("rank ≥ 3")
  })
  it("an invalid string option lists the allowed values", () => {
    const r = checkBody("tensor<fp16, [4]> x", `tensor<fp16, [4]> y = gelu(mode = string("FAST"), x = x);`)
    expect(errors(r)[0].message).toBe(
      `gelu: argument \`mode\` expected one of "EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION", found "FAST"`)
  })
  it("const value and declared type disagree", () => {
    const r = checkBody("tensor<fp16, [4]> x", `tensor<int32, [3]> c = const()[name = string("c"), val = tensor<int32, [2]>([1, 2])];
      tensor<fp16, [4]> y = relu(x = x);`)
    expect(errors(r)[0].message).toBe("const: output `c` expected shape [2] (inferred), found [3] declared")
  })
  it("every message says what was expected and what was found", () => {
    const r = checkBody("tensor<fp16, [4]> x, tensor<fp32, [4]> z", `tensor<fp16, [4]> a = add(x = x, y = z);
      tensor<fp16, [5]> b = relu(x = x, q = x);
      tensor<fp16, [4]> c = nope2(x = x);
      tensor<fp16, [4]> y = add(x = x, y = missing);`)
    expect(r.diagnostics.length).toBeGreaterThanOrEqual(4)
    for (const d of r.diagnostics) expect(d.message).toMatch(/expected/)
  })
  it("nested blocks see outer names, keep their own names inside, and must define what they return", () => {
    const r = checkBody("tensor<fp16, [4]> x, bool p", `tensor<fp16, [4]> c = cond(pred = p) {
        tensor<fp16, [4]> inner = relu(x = x);
      } -> (inner) {
        tensor<fp16, [4]> other = sigmoid(x = x);
      } -> (gone);
      tensor<fp16, [4]> y = add(x = c, y = inner);`)
    expect(errors(r).map((d) => [d.code, d.message])).toEqual([
      [TypeCodes.functionOutput, "a block of `cond` returns `gone`: expected a defined value, found no input or op output of that name"],
      [TypeCodes.undefinedName, "undefined name `inner`: expected a function input or an earlier op output"]
    ])
  })
})
