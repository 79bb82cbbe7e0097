import { describe, expect, it } from "@effect/vitest"
import {
  binary, type BinaryOp, dequantize, erf, planBroadcast, quantize, select, sizeOf, unary, type UnaryOp
} from "../../../src/sim/kernels/index.js"
import { expectWithin, fails, oneRounding, ok, rand } from "./helpers.js"

// Reference numpy-style broadcast index: out coordinate → operand flat index.
const srcIndex = (outShape: Array<number>, shape: Array<number>, q: number): number => {
  const coord: Array<number> = []
  for (let d = outShape.length - 1; d >= 0; d--) { coord.unshift(q % outShape[d]!); q = Math.floor(q / outShape[d]!) }
  let idx = 0
  for (let d = 0; d < shape.length; d++) {
    const c = coord[outShape.length - shape.length + d]!
    idx = idx * shape[d]! + (shape[d] === 1 ? 0 : c)
  }
  return idx
}

const refOps: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, real_div: (a, b) => a / b,
  pow: (a, b) => a ** b, maximum: (a, b) => (a > b ? a : b), minimum: (a, b) => (a < b ? a : b),
  floor_div: (a, b) => Math.floor(a / b), mod: (a, b) => a - Math.floor(a / b) * b,
  equal: (a, b) => +(a === b), not_equal: (a, b) => +(a !== b), less: (a, b) => +(a < b),
  less_equal: (a, b) => +(a <= b), greater: (a, b) => +(a > b), greater_equal: (a, b) => +(a >= b),
  logical_and: (a, b) => +(!!a && !!b), logical_or: (a, b) => +(!!a || !!b), logical_xor: (a, b) => +(!!a !== !!b)
}

describe("binary", () => {
  const shapes: Array<[Array<number>, Array<number>, Array<number>]> = [
    [[2, 3, 4], [2, 3, 4], [2, 3, 4]],
    [[2, 1, 4], [3, 1], [2, 3, 4]],
    [[1], [5, 2], [5, 2]],
    [[], [3, 2], [3, 2]],
    [[4, 1, 1, 3], [1, 5, 2, 1], [4, 5, 2, 3]],
    [[1, 3, 1, 4], [1, 3, 1, 4], [1, 3, 1, 4]],
    [[3, 4], [1, 1], [3, 4]]
  ]
  it.each(Object.keys(refOps) as Array<BinaryOp>)("%s broadcasts like numpy and rounds once to fp32", (op) => {
    for (const [as, bs, os] of shapes) {
      const plan = ok(planBroadcast(op, [as, bs]))
      expect(plan.outShape).toEqual(os)
      const a = rand(sizeOf(as), 1, op === "pow" ? 0.1 : -4, 4)
      const b = rand(sizeOf(bs), 2, op === "pow" ? -2 : -4, 4)
      if (op === "equal" || op === "not_equal" || op.startsWith("logical")) {
        // Make ties and zeros frequent enough to matter.
        for (let i = 0; i < a.length; i += 2) a[i] = Math.round(a[i]!)
        for (let i = 0; i < b.length; i += 2) b[i] = Math.round(b[i]!)
      }
      const out = new Float32Array(sizeOf(os)).fill(NaN)
      binary(op, plan, a, b, out)
      const ref = Array.from({ length: out.length }, (_, q) =>
        refOps[op](a[srcIndex(os, as, q)]!, b[srcIndex(os, bs, q)]!))
      expectWithin(out, ref, op === "mod" || op === "floor_div" ? oneRounding(ref, 1e-6) : oneRounding(ref), op)
    }
  })

  it("runs as one flat loop only when every operand is contiguous or a single value", () => {
    expect(ok(planBroadcast("add", [[1, 3, 1, 4], [1, 3, 1, 4]])).flat).toEqual([1, 1])
    expect(ok(planBroadcast("add", [[3, 4], [1, 1]])).flat).toEqual([1, 0])
    expect(ok(planBroadcast("add", [[], [3, 2]])).flat).toEqual([0, 1])
    expect(ok(planBroadcast("add", [[2, 1, 4], [3, 1]])).flat).toBeUndefined()
    expect(ok(planBroadcast("add", [[3, 1], [3, 4]])).flat).toBeUndefined()
  })

  it("computes int32 floor_div and mod with Python signs", () => {
    const plan = ok(planBroadcast("mod", [[4], [4]]))
    const a = Int32Array.from([7, -7, 7, -7]), b = Int32Array.from([2, 2, -2, -2])
    const q = new Int32Array(4), r = new Int32Array(4)
    binary("floor_div", plan, a, b, q)
    binary("mod", plan, a, b, r)
    expect(Array.from(q)).toEqual([3, -4, -4, 3])
    expect(Array.from(r)).toEqual([1, 1, -1, -1])
  })

  it("writes comparisons as 0/1 into a Uint8Array", () => {
    const plan = ok(planBroadcast("less", [[3], [1]]))
    const out = new Uint8Array(3)
    binary("less", plan, Float32Array.from([1, 2, 3]), Float32Array.from([2]), out)
    expect(Array.from(out)).toEqual([1, 0, 0])
  })

  it("rejects shapes that do not broadcast, naming both", () => {
    const e = fails(planBroadcast("add", [[2, 3], [4, 3]]))
    expect(e.message).toContain("[2, 3]")
    expect(e.message).toContain("[4, 3]")
  })

  it("select broadcasts cond, a and b together", () => {
    const plan = ok(planBroadcast("select", [[2, 1], [1, 3], [1]]))
    expect(plan.outShape).toEqual([2, 3])
    const out = new Float32Array(6)
    select(plan, Uint8Array.from([1, 0]), Float32Array.from([1, 2, 3]), Float32Array.from([9]), out)
    expect(Array.from(out)).toEqual([1, 2, 3, 9, 9, 9])
  })
})

// Independent erf: composite Simpson integration of 2/√π·e^(−t²) (float64, error ≪ fp32 ulp).
const erfRef = (x: number): number => {
  const n = 2000, h = x / n
  let s = 1 + Math.exp(-x * x)
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2))
  return (s * h / 3) * 2 / Math.sqrt(Math.PI)
}

const sig = (v: number) => 1 / (1 + Math.exp(-v))
const unaryRef: Array<[UnaryOp, (v: number) => number, number, number]> = [
  ["exp", Math.exp, -5, 5], ["exp2", (v) => 2 ** v, -5, 5], ["log", (v) => Math.log(v + 1e-45), 0.01, 10],
  ["sqrt", Math.sqrt, 0, 10], ["rsqrt", (v) => 1 / Math.sqrt(v + 1e-12), 0.01, 10], ["inverse", (v) => 1 / (v + 1e-4), 0.1, 5],
  ["abs", Math.abs, -3, 3], ["floor", Math.floor, -3, 3], ["ceil", Math.ceil, -3, 3], ["sign", Math.sign, -3, 3],
  ["sin", Math.sin, -4, 4], ["cos", Math.cos, -4, 4], ["tanh", Math.tanh, -4, 4], ["sigmoid", sig, -8, 8],
  ["relu", (v) => Math.max(v, 0), -2, 2], ["silu", (v) => v * sig(v), -6, 6],
  ["gelu", (v) => 0.5 * v * (1 + erfRef(v / Math.SQRT2)), -4, 4],
  ["gelu_tanh", (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), -4, 4],
  ["gelu_sigmoid", (v) => v * sig(1.702 * v), -4, 4],
  ["softplus", (v) => Math.log(1 + Math.exp(v)), -10, 10], ["erf", erfRef, -4, 4], ["square", (v) => v * v, -3, 3],
  ["softsign", (v) => v / (1 + Math.abs(v)), -3, 3], ["hard_sigmoid", (v) => Math.min(1, Math.max(0, 0.2 * v + 0.5)), -4, 4],
  ["elu", (v) => (v > 0 ? v : Math.exp(v) - 1), -3, 3], ["atan", Math.atan, -3, 3]
]

describe("unary", () => {
  it.each(unaryRef)("%s matches its float64 definition within one fp32 rounding", (op, f, lo, hi) => {
    const x = rand(512, 3, lo, hi)
    const out = new Float32Array(512)
    unary(op, x, out)
    const ref = Array.from(x, f)
    // Library functions (exp, sin…) in float64 are within a few ulp64; the fp32 store dominates.
    expectWithin(out, ref, ref.map((r) => 1.01 * 2 ** -24 * Math.abs(r) + 1e-12), op)
  })

  it("rounds half away from zero ('round', the engine's rule) or to even ('round_half_even')", () => {
    const x = Float32Array.from([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6])
    const out = new Float32Array(8)
    unary("round", x, out)
    expect(Array.from(out)).toEqual([1, 2, 3, -1, -2, -3, 2, -3])
    unary("round_half_even", x, out)
    expect(Array.from(out)).toEqual([0, 2, 2, -0, -2, -2, 2, -3])
  })

  it("clips to [alpha, beta] and uses the given epsilons", () => {
    const x = Float32Array.from([-2, 0.5, 3])
    const out = new Float32Array(3)
    unary("clip", x, out, 3, { alpha: -1, beta: 1 })
    expect(Array.from(out)).toEqual([-1, 0.5, 1])
    unary("inverse", Float32Array.from([0]), out, 1, { epsilon: 0.5 })
    expect(out[0]).toBe(2)
    unary("log", Float32Array.from([0]), out, 1, { epsilon: 0 })
    expect(out[0]).toBe(-Infinity)
  })

  it("works in place and only on the first n elements", () => {
    const x = Float32Array.from([1, 4, 9])
    unary("sqrt", x, x, 2)
    expect(Array.from(x)).toEqual([1, 2, 9])
  })

  it("keeps softplus finite for large inputs and erf saturating at ±1", () => {
    const out = new Float32Array(2)
    unary("softplus", Float32Array.from([100, -100]), out)
    expect(out[0]).toBe(100)
    expect(out[1]).toBeGreaterThan(0)
    expect(erf(10)).toBe(1)
    expect(erf(-10)).toBe(-1)
    expect(Math.abs(erf(2.6) - erfRef(2.6))).toBeLessThan(1e-13)
  })
})

describe("quantize / dequantize", () => {
  it("round half to even, add the zero point and clamp to the dtype, per axis", () => {
    // x [2, 3] quantized along axis 1
    const x = Float32Array.from([0.5, 1.5, -300, 2.5, 0.26, 1000])
    const scale = Float32Array.from([1, 1, 2]), zp = Int8Array.from([0, 10, -1])
    const out = new Int8Array(6)
    quantize(x, { outer: 2, dim: 3, inner: 1 }, scale, zp, "int8", out)
    expect(Array.from(out)).toEqual([0, 12, -128, 2, 10, 127])
    const u = new Uint8Array(2)
    quantize(Float32Array.from([-1, 300]), { outer: 1, dim: 1, inner: 2 }, Float32Array.from([1]), undefined, "uint8", u)
    expect(Array.from(u)).toEqual([0, 255])
    const back = new Float32Array(6)
    dequantize(out, { outer: 2, dim: 3, inner: 1 }, scale, zp, back)
    expect(Array.from(back)).toEqual([0, 2, -254, 2, 0, 256])
  })
})
