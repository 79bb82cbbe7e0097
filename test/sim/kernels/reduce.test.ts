import { describe, expect, it } from "@effect/vitest"
import {
  argReduce, batchNorm, instanceNorm, l2Norm, layerNorm, planArgReduce, planReduce, reduce, type ReduceOp, rmsNorm,
  sizeOf, softmax, splitAtAxis
} from "../../../src/sim/kernels/index.js"
import { expectWithin, fails, ok, rand, sumBound, U } from "./helpers.js"

// Reference: group input elements by their coordinates outside `axes` (row-major over kept dims).
const groups = (shape: Array<number>, axes: Array<number>, x: ArrayLike<number>): Array<Array<number>> => {
  const ax = axes.map((a) => (a < 0 ? a + shape.length : a))
  const kept = shape.map((d, i) => (ax.includes(i) ? 1 : d))
  const out: Array<Array<number>> = Array.from({ length: sizeOf(kept) }, () => [])
  for (let q = 0; q < x.length; q++) {
    let rem = q, key = 0, mul = 1
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = rem % shape[d]!
      rem = Math.floor(rem / shape[d]!)
      if (!ax.includes(d)) { key += c * mul; mul *= shape[d]! }
    }
    out[key]!.push(x[q]!)
  }
  return out
}

const refReduce: Record<ReduceOp, (v: Array<number>) => number> = {
  sum: (v) => v.reduce((a, b) => a + b, 0), mean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  max: (v) => Math.max(...v), min: (v) => Math.min(...v), prod: (v) => v.reduce((a, b) => a * b, 1),
  l1_norm: (v) => v.reduce((a, b) => a + Math.abs(b), 0), l2_norm: (v) => Math.sqrt(v.reduce((a, b) => a + b * b, 0)),
  sum_square: (v) => v.reduce((a, b) => a + b * b, 0), log_sum: (v) => Math.log(v.reduce((a, b) => a + b, 0)),
  log_sum_exp: (v) => Math.log(v.reduce((a, b) => a + Math.exp(b), 0))
}

describe("reduce", () => {
  const cases: Array<[Array<number>, Array<number> | undefined, boolean, Array<number>]> = [
    [[3, 4, 5], [1], false, [3, 5]],
    [[3, 4, 5], [0, 2], true, [1, 4, 1]],
    [[3, 4, 5], [-1], false, [3, 4]],
    [[2, 3, 2, 3], [3, 1], false, [2, 2]],
    [[6, 7], undefined, false, []]
  ]
  it.each(Object.keys(refReduce) as Array<ReduceOp>)("%s over arbitrary axes matches the grouped float64 sum", (op) => {
    for (const [shape, axes, keep, outShape] of cases) {
      const plan = ok(planReduce(shape, axes, keep))
      expect(plan.outShape).toEqual(outShape)
      const x = rand(sizeOf(shape), 5, op === "log_sum" || op === "prod" ? 0.5 : -2, op === "prod" ? 1.5 : 2)
      const out = new Float32Array(sizeOf(outShape))
      reduce(op, plan, x, out)
      const g = groups(shape, axes ?? shape.map((_, i) => i), x)
      const ref = g.map(refReduce[op])
      const bound = g.map((v) => {
        const abs = v.reduce((a, b) => a + (op === "log_sum_exp" ? Math.exp(b) : op.includes("2") || op === "sum_square" ? b * b : Math.abs(b)), 0)
        const r = op === "prod" ? v.length * 2 * U * Math.abs(refReduce.prod(v)) : sumBound(v.length, abs)
        // log/sqrt/mean shrink or keep relative error; a final rounding adds one ulp.
        return (op === "log_sum" || op === "log_sum_exp" ? r / Math.abs(refReduce.sum(v)) + 4 * U * 10 : r) + 4 * U * Math.abs(refReduce[op](v))
      })
      expectWithin(out, ref, bound, `${op} ${shape}`)
    }
  })

  it("reduces an empty axis to the identity of each op", () => {
    const plan = ok(planReduce([2, 0], [1]))
    const out = new Float32Array(2)
    const x = new Float32Array(0)
    reduce("sum", plan, x, out)
    expect(Array.from(out)).toEqual([0, 0])
    reduce("prod", plan, x, out)
    expect(Array.from(out)).toEqual([1, 1])
    reduce("max", plan, x, out)
    expect(Array.from(out)).toEqual([-Infinity, -Infinity])
  })

  it("keeps log_sum_exp finite for inputs whose exp overflows", () => {
    const plan = ok(planReduce([2], [0]))
    const out = new Float32Array(1)
    reduce("log_sum_exp", plan, Float32Array.from([1000, 1000]), out)
    expect(out[0]).toBeCloseTo(1000 + Math.LN2, 3)
  })

  it("rejects repeated and out-of-range axes", () => {
    expect(fails(planReduce([2, 3], [1, -1])).message).toContain("distinct")
    expect(fails(planReduce([2, 3], [2])).message).toContain("[-2, 1]")
  })
})

describe("argmax / argmin", () => {
  it("return the first index of the extreme value along a middle axis", () => {
    const x = Float32Array.from([1, 5, 5, 0, 2, 2, -1, 7, 3, 0, 0, 0])
    // shape [2, 3, 2], axis 1
    const plan = ok(planArgReduce([2, 3, 2], 1))
    const out = new Int32Array(4)
    argReduce("argmax", plan, x, out)
    expect(Array.from(out)).toEqual([1, 0, 1, 0])
    argReduce("argmin", plan, x, out)
    expect(Array.from(out)).toEqual([0, 1, 0, 1])
    expect(ok(planArgReduce([2, 3, 2], -2, true)).outShape).toEqual([2, 1, 2])
  })
  it("rejects an empty axis", () => {
    expect(fails(planArgReduce([2, 0], 1)).argument).toBe("x")
  })
})

describe("softmax", () => {
  it("normalises along a middle axis and stays finite for large inputs", () => {
    const shape = [2, 5, 3]
    const x = rand(30, 8, -50, 50)
    x[0] = 1e30
    const split = ok(splitAtAxis("softmax", shape, 1))
    const out = new Float32Array(30)
    softmax(split, x, out)
    for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) {
      const v = Array.from({ length: 5 }, (_, k) => x[o * 15 + k * 3 + i]!)
      const m = Math.max(...v)
      const e = v.map((t) => Math.exp(t - m))
      const s = e.reduce((a, b) => a + b, 0)
      for (let k = 0; k < 5; k++) {
        const ref = e[k]! / s
        expect(Math.abs(out[o * 15 + k * 3 + i]! - ref)).toBeLessThanOrEqual(10 * U * ref + 1e-38)
      }
    }
    expect(out[0]).toBe(1)
  })
})

describe("normalisations", () => {
  it("layer_norm over axes [-1, 1] indexes gamma/beta in increasing axis order", () => {
    const shape = [2, 3, 4]
    const x = rand(24, 9), gamma = rand(12, 10), beta = rand(12, 11)
    const plan = ok(planReduce(shape, [-1, 1]))
    const out = new Float32Array(24)
    layerNorm(plan, x, gamma, beta, 1e-5, out)
    for (let n = 0; n < 2; n++) {
      const v = Array.from({ length: 12 }, (_, r) => x[n * 12 + r]!)
      const mean = v.reduce((a, b) => a + b, 0) / 12
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / 12
      for (let r = 0; r < 12; r++) {
        const ref = ((v[r]! - mean) / Math.sqrt(variance + 1e-5)) * gamma[r]! + beta[r]!
        expect(Math.abs(out[n * 12 + r]! - ref)).toBeLessThanOrEqual(1e-5)
      }
    }
  })

  it("rms_norm, l2_norm, batch_norm and instance_norm match their formulas", () => {
    const x = rand(2 * 3 * 4, 12, -3, 3)
    const plan = ok(planReduce([2, 3, 4], [1, 2]))
    const out = new Float32Array(24)
    const g = rand(12, 13)
    rmsNorm(plan, x, g, 1e-6, out)
    for (let n = 0; n < 2; n++) {
      const v = Array.from(x.subarray(n * 12, n * 12 + 12))
      const rms = Math.sqrt(v.reduce((a, b) => a + b * b, 0) / 12 + 1e-6)
      v.forEach((t, r) => expect(Math.abs(out[n * 12 + r]! - (t / rms) * g[r]!)).toBeLessThanOrEqual(1e-5))
    }
    l2Norm(plan, x, 1e-6, out)
    for (let n = 0; n < 2; n++) {
      const v = Array.from(x.subarray(n * 12, n * 12 + 12))
      const l2 = Math.sqrt(v.reduce((a, b) => a + b * b, 0))
      v.forEach((t, r) => expect(Math.abs(out[n * 12 + r]! - t / l2)).toBeLessThanOrEqual(1e-6))
    }
    const mean = rand(3, 14), variance = rand(3, 15, 0.5, 2), gamma = rand(3, 16), beta = rand(3, 17)
    batchNorm(x, 2, 3, 4, mean, variance, gamma, beta, 1e-5, out)
    for (let q = 0; q < 24; q++) {
      const c = Math.floor(q / 4) % 3
      const ref = ((x[q]! - mean[c]!) / Math.sqrt(variance[c]! + 1e-5)) * gamma[c]! + beta[c]!
      expect(Math.abs(out[q]! - ref)).toBeLessThanOrEqual(1e-5)
    }
    instanceNorm(x, 2, 3, 4, gamma, beta, 1e-5, out)
    for (let p = 0; p < 6; p++) {
      const v = Array.from(x.subarray(p * 4, p * 4 + 4))
      const m = v.reduce((a, b) => a + b, 0) / 4
      const vv = v.reduce((a, b) => a + (b - m) ** 2, 0) / 4
      v.forEach((t, i) => {
        const ref = ((t - m) / Math.sqrt(vv + 1e-5)) * gamma[p % 3]! + beta[p % 3]!
        expect(Math.abs(out[p * 4 + i]! - ref)).toBeLessThanOrEqual(1e-5)
      })
    }
  })
})
