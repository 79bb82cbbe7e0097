import { describe, expect, it } from "@effect/vitest"
import { afterAll } from "vitest"
import {
  gemm, kernelBackend, linear, matmul, packLinearWeight, packMatmulY, planMatmul, setFma, setKernelBackend, sizeOf,
  wasmAvailable
} from "../../../src/sim/kernels/index.js"
import { expectWithin, fails, ok, rand, sumBound } from "./helpers.js"

afterAll(() => { setKernelBackend("auto") })

// float64 reference: C[i,j] = Σ_k A[i,k]·B[k,j] with A, B given as element getters; returns values and bounds.
const refMatmul = (M: number, N: number, K: number, A: (i: number, k: number) => number, B: (k: number, j: number) => number) => {
  const out = new Float64Array(M * N), bound = new Float64Array(M * N)
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, abs = 0
      for (let k = 0; k < K; k++) { const p = A(i, k) * B(k, j); s += p; abs += Math.abs(p) }
      out[i * N + j] = s
      bound[i * N + j] = sumBound(K, abs)
    }
  }
  return { out, bound }
}

const backends = ["wasm", "js"] as const

describe.each(backends)("matmul on %s", (backend) => {
  const use = () => { ok(setKernelBackend(backend)); expect(kernelBackend()).toBe(backend) }

  it.each([
    [1, 1, 1], [3, 5, 7], [4, 8, 16], [13, 37, 300], [9, 270, 20], [64, 64, 64], [5, 3, 0]
  ])("multiplies %i×%i by K=%i within the fp32 accumulation bound", (M, N, K) => {
    use()
    const x = rand(M * K, M + 1), y = rand(K * N, N + 2)
    const plan = ok(planMatmul([M, K], [K, N]))
    expect(plan.outShape).toEqual([M, N])
    const out = new Float32Array(M * N).fill(NaN)
    matmul(plan, x, y, out)
    const ref = refMatmul(M, N, K, (i, k) => x[i * K + k]!, (k, j) => y[k * N + j]!)
    expectWithin(out, ref.out, ref.bound)
  })

  it("honours transpose_x and transpose_y", () => {
    use()
    const M = 6, N = 11, K = 9
    const xt = rand(K * M, 3), yt = rand(N * K, 4)
    const plan = ok(planMatmul([K, M], [N, K], true, true))
    expect(plan.outShape).toEqual([M, N])
    const out = new Float32Array(M * N)
    matmul(plan, xt, yt, out)
    const ref = refMatmul(M, N, K, (i, k) => xt[k * M + i]!, (k, j) => yt[j * K + k]!)
    expectWithin(out, ref.out, ref.bound)
  })

  it("broadcasts batch dims of size 1 and missing leading dims", () => {
    use()
    // x [2, 1, 3, 4] · y [3, 4, 5] → [2, 3, 3, 5]
    const x = rand(2 * 3 * 4, 5), y = rand(3 * 4 * 5, 6)
    const plan = ok(planMatmul([2, 1, 3, 4], [3, 4, 5]))
    expect(plan.outShape).toEqual([2, 3, 3, 5])
    const out = new Float32Array(2 * 3 * 3 * 5)
    matmul(plan, x, y, out)
    const ref = new Float64Array(out.length), bound = new Float64Array(out.length)
    for (let a = 0; a < 2; a++) {
      for (let b = 0; b < 3; b++) {
        const r = refMatmul(3, 5, 4, (i, k) => x[a * 12 + i * 4 + k]!, (k, j) => y[b * 20 + k * 5 + j]!)
        ref.set(r.out, (a * 3 + b) * 15)
        bound.set(r.bound, (a * 3 + b) * 15)
      }
    }
    expectWithin(out, ref, bound)
  })

  it("treats a rank-1 x as a row and a rank-1 y as a column, dropping those dims", () => {
    use()
    const x = rand(4, 7), y = rand(2 * 4 * 3, 8)
    const plan = ok(planMatmul([4], [2, 4, 3]))
    expect(plan.outShape).toEqual([2, 3])
    const out = new Float32Array(6)
    matmul(plan, x, y, out)
    const ref: Array<number> = []
    for (let b = 0; b < 2; b++) for (let j = 0; j < 3; j++) {
      let s = 0
      for (let k = 0; k < 4; k++) s += x[k]! * y[b * 12 + k * 3 + j]!
      ref.push(s)
    }
    expectWithin(out, ref, 1e-6)
    expect(ok(planMatmul([2, 4], [4])).outShape).toEqual([2])
  })

  it("linear adds the bias to x·Wᵀ", () => {
    use()
    const rows = 5, K = 7, N = 10
    const x = rand(rows * K, 9), w = rand(N * K, 10), b = rand(N, 11)
    const out = new Float32Array(rows * N)
    linear(x, rows, K, w, N, b, out)
    const ref = refMatmul(rows, N, K, (i, k) => x[i * K + k]!, (k, j) => w[j * K + k]!)
    for (let i = 0; i < rows * N; i++) { ref.out[i]! += b[i % N]!; ref.bound[i]! += sumBound(K + 1, Math.abs(b[i % N]!)) }
    expectWithin(out, ref.out, ref.bound)
    linear(x, rows, K, w, N, undefined, out)
    const ref2 = refMatmul(rows, N, K, (i, k) => x[i * K + k]!, (k, j) => w[j * K + k]!)
    expectWithin(out, ref2.out, ref2.bound)
  })

  it("gemm accumulates into strided C sub-blocks without touching the gaps", () => {
    use()
    const M = 5, N = 6, K = 3, ldc = 9
    const a = rand(M * K, 12), b = rand(K * N, 13)
    const c = new Float32Array(M * ldc).fill(2)
    gemm(M, N, K, a, 0, K, false, b, 0, N, false, c, 1, ldc, true)
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < ldc; j++) {
        const v = c[i * ldc + j]!
        if (j < 1 || j > N) { expect(v).toBe(2); continue }
        let s = 2
        for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j - 1]!
        expect(Math.abs(v - s)).toBeLessThanOrEqual(sumBound(K + 1, 8))
      }
    }
  })
})

describe("matmul backends", () => {
  it("loads the WebAssembly SIMD kernel on this engine (Node 20 validates SIMD128)", () => {
    expect(wasmAvailable()).toBe(true)
  })

  it("wasm and JS agree bit for bit (same summation order) across block edges", () => {
    setFma(false)
    for (const [M, N, K, tx, ty] of [[37, 301, 513, false, false], [6, 9, 260, true, true], [1, 1, 700, false, true]] as const) {
      const x = rand(M * K, M), y = rand(K * N, N)
      const plan = ok(planMatmul(tx ? [K, M] : [M, K], ty ? [N, K] : [K, N], tx, ty))
      const outW = new Float32Array(M * N), outJ = new Float32Array(M * N)
      ok(setKernelBackend("wasm"))
      matmul(plan, x, y, outW)
      ok(setKernelBackend("js"))
      matmul(plan, x, y, outJ)
      expect(Array.from(outW)).toEqual(Array.from(outJ))
    }
    setKernelBackend("auto")
    setFma(true)
  })
})

describe.each(backends)("matmul and linear with a packed constant operand on %s", (backend) => {
  it("give the same bits as with the operand packed per call, batches and transposes included", () => {
    ok(setKernelBackend(backend))
    setFma(false)
    const plan = ok(planMatmul([2, 3, 5, 9], [3, 7, 9], false, true)) // y transposed, broadcast over the first dim
    const x = rand(2 * 3 * 5 * 9, 8), y = rand(3 * 7 * 9, 9)
    const packed = packMatmulY(plan, y)
    expect(new Set(packed).size).toBe(3)
    const plain = new Float32Array(sizeOf(plan.outShape)), viaPacked = new Float32Array(sizeOf(plan.outShape))
    matmul(plan, x, y, plain)
    matmul(plan, x, y, viaPacked, packed)
    expect(Array.from(viaPacked)).toEqual(Array.from(plain))
    const w = rand(11 * 9, 10), bias = rand(11, 11)
    const lin = new Float32Array(30 * 11), linPacked = new Float32Array(30 * 11)
    linear(x, 30, 9, w, 11, bias, lin)
    linear(x, 30, 9, w, 11, bias, linPacked, packLinearWeight(w, 9, 11))
    expect(Array.from(linPacked)).toEqual(Array.from(lin))
    setFma(true)
  })
})

describe("setKernelBackend", () => {
  it("switches to js and back to the automatic choice", () => {
    expect(ok(setKernelBackend("js"))).toBe("js")
    expect(kernelBackend()).toBe("js")
    expect(ok(setKernelBackend("auto"))).toBe("wasm")
  })
})

describe("planMatmul errors", () => {
  it("rejects mismatched contraction dims, naming both shapes", () => {
    const e = fails(planMatmul([2, 3], [4, 5]))
    expect(e._tag).toBe("InvalidArgumentError")
    expect(e.message).toContain("[2, 3]")
    expect(e.message).toContain("[4, 5]")
  })
  it("rejects batch dims that do not broadcast", () => {
    expect(fails(planMatmul([2, 3, 4], [3, 4, 5])).message).toContain("broadcast")
  })
  it("rejects rank-0 operands and negative dims", () => {
    expect(fails(planMatmul([], [3])).argument).toBe("rank")
    expect(fails(planMatmul([2, -1], [3, 3])).argument).toBe("x")
  })
})
