/** layer_norm's gamma, beta and epsilon share one float dtype (x's before iOS17): a mismatch is a type error. */
import { describe, expect, it } from "@effect/vitest"
import { analyze } from "../../src/mil/analyze.js"
import { TypeCodes } from "../../src/mil/check.js"
import { checkBody, errors, milProgram } from "./milText.js"

const X = "tensor<fp16, [1, 64, 1, 8]> x"
const body = (gamma: string, eps: string) => `tensor<${gamma}, [64]> g = const()[name = string("g"), val = tensor<${gamma}, [64]>(1)];
  ${eps} e = const()[name = string("e"), val = ${eps}(0.001)];
  tensor<fp16, [1, 64, 1, 8]> y = layer_norm(axes = tensor<int32, [1]>([1]), epsilon = e, gamma = g, x = x);`

describe("layer_norm parameter dtypes", () => {
  it("epsilon fp32 with gamma fp16 is a type error at epsilon, on iOS17+ too", () => {
    for (const opset of ["ios17", "ios18"]) {
      const r = checkBody(X, body("fp16", "fp32"), "y", opset)
      const found = errors(r)
      expect(found.map((d) => [d.code, d.line])).toEqual([[TypeCodes.wrongDtype, 7]])
      expect(found[0]!.message).toBe("layer_norm: argument `epsilon` expected dtype fp16 (the dtype of `gamma`), found fp32")
    }
  })
  it("is reported once, as the type error, not as the ANE rule", () => {
    const codes = analyze(milProgram(X, body("fp16", "fp32"))).diagnostics.map((d) => d.code)
    expect(codes).toContain(TypeCodes.wrongDtype)
    expect(codes).not.toContain("ANE022")
  })
  it("before iOS17 the parameters take x's dtype", () => {
    const r = checkBody(X, body("fp16", "fp32"), "y", "ios16")
    expect(errors(r).map((d) => d.code)).toEqual([TypeCodes.wrongDtype])
  })
  it("gamma and epsilon both fp32 with fp16 x is well typed on iOS17 (U), and the engine rule refuses it", () => {
    const r = checkBody(X, body("fp32", "fp32"), "y", "ios18")
    expect(errors(r)).toEqual([])
    const codes = analyze(milProgram(X, body("fp32", "fp32"))).diagnostics.map((d) => d.code)
    expect(codes).toContain("ANE022")
  })
  it("all fp16 is clean", () => {
    const a = analyze(milProgram(X, body("fp16", "fp16")))
    expect(a.diagnostics.filter((d) => d.severity === "error")).toEqual([])
  })
})
