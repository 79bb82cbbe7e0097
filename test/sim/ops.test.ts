/** Per-op results against float64 references (exact numerics, fp32 I/O). */
import { describe, expect, it } from "vitest"
import { writeBlobFile } from "../../src/mil/blob.js"
import { erf } from "../../src/sim/ops/elementwise.js"
import { maxAbsDiff, program, randoms, runMil } from "./helpers.js"

const lit = (dtype: string, shape: ReadonlyArray<number>, values: ArrayLike<number | string>) =>
  `tensor<${dtype}, [${shape.join(", ")}]>([${Array.from(values).join(", ")}])`
const t = (shape: ReadonlyArray<number>, dtype = "fp32") => `tensor<${dtype}, [${shape.join(", ")}]>`
const exact = { numerics: "exact" as const, rules: "off" as const }

/** Runs a one-op program: inputs named x (and more), output y. */
const one = async (
  ins: Record<string, ReadonlyArray<number>>, data: Record<string, ArrayLike<number>>, body: string,
  outs: Record<string, ReadonlyArray<number>> = {}, weights: ReadonlyArray<{ path: string; bytes: Uint8Array }> = []
) => {
  const decl = Object.entries(ins).map(([n, s]) => `${t(s)} ${n}`).join(", ")
  void outs
  return runMil(program(decl, body, Object.keys(outs).join(", ") || "y"), data, exact, weights)
}

const expectClose = (got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-5) => {
  expect(got.length).toBe(want.length)
  expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(tol)
}

describe("conv", () => {
  it("2-D with groups, strides, dilations, custom pads and bias", async () => {
    const [N, Cin, H, W] = [1, 4, 5, 6]
    const [Cout, G, KH, KW] = [6, 2, 3, 2]
    const [sh, sw, dh, dw] = [1, 2, 2, 1]
    const [pt, pb, pl, pr] = [1, 0, 1, 1]
    const x = randoms(N * Cin * H * W, 1), w = randoms(Cout * (Cin / G) * KH * KW, 2), b = randoms(Cout, 3)
    const OH = Math.floor((H + pt + pb - (KH - 1) * dh - 1) / sh) + 1
    const OW = Math.floor((W + pl + pr - (KW - 1) * dw - 1) / sw) + 1
    const ref = new Float64Array(Cout * OH * OW)
    for (let co = 0; co < Cout; co++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      let acc = b[co]!
      const g = Math.floor(co / (Cout / G))
      for (let ci = 0; ci < Cin / G; ci++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
        const ih = oh * sh - pt + kh * dh, iw = ow * sw - pl + kw * dw
        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue
        acc += x[((g * (Cin / G) + ci) * H + ih) * W + iw]! * w[((co * (Cin / G) + ci) * KH + kh) * KW + kw]!
      }
      ref[(co * OH + oh) * OW + ow] = acc
    }
    const r = await one({ x: [N, Cin, H, W] }, { x }, `
    ${t([Cout, Cin / G, KH, KW])} w = const()[name = string("w"), val = ${lit("fp32", [Cout, Cin / G, KH, KW], w)}];
    ${t([Cout])} b = const()[name = string("b"), val = ${lit("fp32", [Cout], b)}];
    ${t([N, Cout, OH, OW])} y = conv(x = x, weight = w, bias = b, strides = ${lit("int32", [2], [sh, sw])}, pad_type = string("custom"), pad = ${lit("int32", [4], [pt, pb, pl, pr])}, dilations = ${lit("int32", [2], [dh, dw])}, groups = int32(${G}))[name = string("y")];`)
    expectClose(r.y!, ref)
  })

  it("1-D with same padding and stride 2 (floor-before split)", async () => {
    const x = randoms(3 * 7, 4), w = randoms(2 * 3 * 4, 5)
    const K = 4, S = 2, D = 7
    const O = Math.ceil(D / S)
    const total = Math.max(0, S * (O - 1) + K - D)
    const before = Math.floor(total / 2)
    const ref = new Float64Array(2 * O)
    for (let co = 0; co < 2; co++) for (let o = 0; o < O; o++) {
      let acc = 0
      for (let ci = 0; ci < 3; ci++) for (let k = 0; k < K; k++) {
        const i = o * S - before + k
        if (i >= 0 && i < D) acc += x[ci * D + i]! * w[(co * 3 + ci) * K + k]!
      }
      ref[co * O + o] = acc
    }
    const r = await one({ x: [1, 3, D] }, { x }, `
    ${t([2, 3, K])} w = const()[name = string("w"), val = ${lit("fp32", [2, 3, K], w)}];
    ${t([1, 2, O])} y = conv(x = x, weight = w, strides = ${lit("int32", [1], [S])}, pad_type = string("same"))[name = string("y")];`)
    expectClose(r.y!, ref)
  })
})

describe("matmul, linear, attention", () => {
  it("matmul with both transposes and a broadcast batch", async () => {
    const x = randoms(2 * 3 * 4, 6), yv = randoms(5 * 3, 7)
    // x [2, 3, 4] transposed → [2, 4, 3]; y [1, 5, 3] transposed → [1, 3, 5]; out [2, 4, 5]
    const ref = new Float64Array(2 * 4 * 5)
    for (let b = 0; b < 2; b++) for (let i = 0; i < 4; i++) for (let j = 0; j < 5; j++) {
      let acc = 0
      for (let k = 0; k < 3; k++) acc += x[(b * 3 + k) * 4 + i]! * yv[j * 3 + k]!
      ref[(b * 4 + i) * 5 + j] = acc
    }
    const r = await one({ x: [2, 3, 4], w: [1, 5, 3] }, { x, w: yv },
      `    ${t([2, 4, 5])} y = matmul(x = x, y = w, transpose_x = bool(true), transpose_y = bool(true))[name = string("y")];`)
    expectClose(r.y!, ref)
  })

  it("linear is x·Wᵀ + b", async () => {
    const x = randoms(6, 8), w = randoms(12, 9), b = randoms(4, 10)
    const ref = Array.from({ length: 8 }, (_, k) => {
      const r = Math.floor(k / 4), j = k % 4
      return b[j]! + [0, 1, 2].reduce((s, i) => s + x[r * 3 + i]! * w[j * 3 + i]!, 0)
    })
    const r = await one({ x: [2, 3] }, { x }, `
    ${t([4, 3])} w = const()[name = string("w"), val = ${lit("fp32", [4, 3], w)}];
    ${t([4])} b = const()[name = string("b"), val = ${lit("fp32", [4], b)}];
    ${t([2, 4])} y = linear(x = x, weight = w, bias = b)[name = string("y")];`)
    expectClose(r.y!, ref)
  })

  it("scaled_dot_product_attention with a bool mask", async () => {
    const L = 3, S = 4, E = 2
    const q = randoms(L * E, 11), k = randoms(S * E, 12), v = randoms(S * E, 13)
    const mask = [1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1]
    const ref: Array<number> = []
    for (let i = 0; i < L; i++) {
      const s = Array.from({ length: S }, (_, j) =>
        mask[i * S + j] ? (q[i * E]! * k[j * E]! + q[i * E + 1]! * k[j * E + 1]!) / Math.sqrt(E) : -Infinity)
      const m = Math.max(...s)
      const e = s.map((z) => Math.exp(z - m))
      const sum = e.reduce((a, b) => a + b, 0)
      for (let d = 0; d < E; d++) ref.push(e.reduce((a, p, j) => a + p * v[j * E + d]!, 0) / sum)
    }
    const r = await one({ q: [1, L, E], k: [1, S, E], v: [1, S, E] }, { q, k, v }, `
    ${t([1, L, S], "bool")} m = const()[name = string("m"), val = ${lit("bool", [1, L, S], mask.map((b) => (b ? "true" : "false")))}];
    ${t([1, L, E])} y = scaled_dot_product_attention(query = q, key = k, value = v, attn_mask = m)[name = string("y")];`)
    expectClose(r.y!, ref)
  })
})

describe("normalisation and reductions", () => {
  const shape = [2, 3, 4]
  const x = randoms(24, 14)
  const at = (a: number, b: number, c: number) => x[(a * 3 + b) * 4 + c]!

  it("softmax along axis 1", async () => {
    const ref: Array<number> = new Array(24)
    for (let a = 0; a < 2; a++) for (let c = 0; c < 4; c++) {
      const col = [0, 1, 2].map((b) => Math.exp(at(a, b, c)))
      const s = col.reduce((p, q) => p + q, 0)
      for (let b = 0; b < 3; b++) ref[(a * 3 + b) * 4 + c] = col[b]! / s
    }
    const r = await one({ x: shape }, { x }, `    ${t(shape)} y = softmax(x = x, axis = int32(1))[name = string("y")];`)
    expectClose(r.y!, ref)
  })

  it("cumsum along each axis, inclusive and exclusive, forwards and backwards", async () => {
    for (const axis of [0, 1, -1]) {
      for (const exclusive of [false, true]) {
        for (const reverse of [false, true]) {
          const ax = axis < 0 ? 3 + axis : axis
          const ref: Array<number> = new Array(24)
          for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) {
            const pos = [a, b, c]
            const n = shape[ax]!
            let sum = 0
            for (let k = 0; k < n; k++) {
              const before = reverse ? k > pos[ax]! : k < pos[ax]!
              if (before || (!exclusive && k === pos[ax])) {
                const q = [...pos]
                q[ax] = k
                sum += at(q[0]!, q[1]!, q[2]!)
              }
            }
            ref[(a * 3 + b) * 4 + c] = sum
          }
          const r = await one({ x: shape }, { x }, `    ${t(shape)} y = cumsum(x = x, axis = int32(${axis}), ` +
            `exclusive = bool(${exclusive}), reverse = bool(${reverse}))[name = string("y")];`)
          expectClose(r.y!, ref)
        }
      }
    }
  })

  it("layer_norm over the last two axes with gamma and beta", async () => {
    const g = randoms(12, 15), be = randoms(12, 16)
    const ref: Array<number> = []
    for (let a = 0; a < 2; a++) {
      const seg = Array.from(x.subarray(a * 12, a * 12 + 12))
      const mean = seg.reduce((p, q) => p + q, 0) / 12
      const v = seg.reduce((p, q) => p + (q - mean) ** 2, 0) / 12
      seg.forEach((q, i) => ref.push(((q - mean) / Math.sqrt(v + 1e-5)) * g[i]! + be[i]!))
    }
    const r = await one({ x: shape }, { x }, `
    ${t([3, 4])} g = const()[name = string("g"), val = ${lit("fp32", [3, 4], g)}];
    ${t([3, 4])} b = const()[name = string("b"), val = ${lit("fp32", [3, 4], be)}];
    ${t(shape)} y = layer_norm(x = x, axes = ${lit("int32", [2], [-1, -2])}, gamma = g, beta = b, epsilon = fp32(1e-5))[name = string("y")];`)
    expectClose(r.y!, ref)
  })

  it("reduce_sum keep_dims, reduce_max over two axes, reduce_mean over all", async () => {
    const sum1 = Array.from({ length: 8 }, (_, k) => [0, 1, 2].reduce((s, b) => s + at(Math.floor(k / 4), b, k % 4), 0))
    const max02 = [0, 1, 2].map((b) => Math.max(...[0, 1].flatMap((a) => [0, 1, 2, 3].map((c) => at(a, b, c)))))
    const mean = Array.from(x).reduce((p, q) => p + q, 0) / 24
    const r = await one({ x: shape }, { x }, `
    ${t([2, 1, 4])} s = reduce_sum(x = x, axes = ${lit("int32", [1], [1])}, keep_dims = bool(true))[name = string("s")];
    ${t([3])} m = reduce_max(x = x, axes = ${lit("int32", [2], [0, 2])})[name = string("m")];
    ${t([1, 1, 1])} a = reduce_mean(x = x, axes = ${lit("int32", [3], [0, 1, 2])}, keep_dims = bool(true))[name = string("a")];
    ${t([2, 3], "int32")} ai = reduce_argmax(x = x, axis = int32(-1))[name = string("ai")];
    ${t([2, 3])} am = cast(x = ai, dtype = string("fp32"))[name = string("am")];`, { s: [], m: [], a: [], am: [] })
    expectClose(r.s!, sum1)
    expectClose(r.m!, max02)
    expectClose(r.a!, [mean])
    const am = Array.from({ length: 6 }, (_, k) => {
      const row = [0, 1, 2, 3].map((c) => x[k * 4 + c]!)
      return row.indexOf(Math.max(...row))
    })
    expect(Array.from(r.am!)).toEqual(am)
  })
})

describe("shape and indexing ops", () => {
  it("pad: reflect, replicate and constant on the last two axes", async () => {
    const x = [1, 2, 3, 4, 5, 6] // [2, 3]
    const r = await one({ x: [2, 3] }, { x }, `
    ${t([2, 7])} a = pad(x = x, pad = ${lit("int32", [2], [2, 2])}, mode = string("reflect"))[name = string("a")];
    ${t([4, 4])} b = pad(x = x, pad = ${lit("int32", [4], [1, 1, 0, 1])}, mode = string("replicate"))[name = string("b")];
    ${t([2, 4])} c = pad(x = x, pad = ${lit("int32", [2], [1, 0])}, mode = string("constant"), constant_val = fp32(9))[name = string("c")];`,
      { a: [], b: [], c: [] })
    expect(Array.from(r.a!)).toEqual([3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4])
    expect(Array.from(r.b!)).toEqual([1, 2, 3, 3, 1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6])
    expect(Array.from(r.c!)).toEqual([9, 1, 2, 3, 9, 4, 5, 6])
  })

  it("slice_by_index with a negative stride, masks and squeeze; slice_by_size", async () => {
    const x = Array.from({ length: 24 }, (_, i) => i) // [2, 3, 4]
    const r = await one({ x: [2, 3, 4] }, { x }, `
    ${t([3, 2])} a = slice_by_index(x = x, begin = ${lit("int32", [3], [1, 0, 3])}, end = ${lit("int32", [3], [0, 3, 0])}, stride = ${lit("int32", [3], [1, 1, -2])}, begin_mask = ${lit("bool", [3], ["false", "true", "false"])}, end_mask = ${lit("bool", [3], ["false", "true", "true"])}, squeeze_mask = ${lit("bool", [3], ["true", "false", "false"])})[name = string("a")];
    ${t([1, 2, 2])} b = slice_by_size(x = x, begin = ${lit("int32", [3], [1, 1, -2])}, size = ${lit("int32", [3], [1, 2, -1])})[name = string("b")];`,
      { a: [], b: [] })
    // x[1, :, 3::-2] → rows of block 1: [15, 13], [19, 17], [23, 21]
    expect(Array.from(r.a!)).toEqual([15, 13, 19, 17, 23, 21])
    expect(Array.from(r.b!)).toEqual([18, 19, 22, 23])
  })

  it("concat (plain and interleaved), split, stack, transpose, tile, depth_to_space", async () => {
    const a = [1, 2, 3, 4], b = [5, 6, 7, 8] // [2, 2]
    const r = await one({ a: [2, 2], b: [2, 2] }, { a, b }, `
    ${t([2, 4])} c = concat(values = (a, b), axis = int32(1), interleave = bool(false))[name = string("c")];
    ${t([4, 2])} i = concat(values = (a, b), axis = int32(0), interleave = bool(true))[name = string("i")];
    ${t([2, 1])} s0, ${t([2, 1])} s1 = split(x = a, num_splits = int32(2), axis = int32(1))[name = string("s")];
    ${t([2, 2, 2])} st = stack(values = (a, b), axis = int32(1))[name = string("st")];
    ${t([2, 2])} tr = transpose(x = a, perm = ${lit("int32", [2], [1, 0])})[name = string("tr")];
    ${t([2, 6])} tl = tile(x = a, reps = ${lit("int32", [2], [1, 3])})[name = string("tl")];`,
      { c: [], i: [], s1: [], st: [], tr: [], tl: [] })
    expect(Array.from(r.c!)).toEqual([1, 2, 5, 6, 3, 4, 7, 8])
    expect(Array.from(r.i!)).toEqual([1, 2, 5, 6, 3, 4, 7, 8])
    expect(Array.from(r.s1!)).toEqual([2, 4])
    expect(Array.from(r.st!)).toEqual([1, 2, 5, 6, 3, 4, 7, 8])
    expect(Array.from(r.tr!)).toEqual([1, 3, 2, 4])
    expect(Array.from(r.tl!)).toEqual([1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4])
    const x = Array.from({ length: 8 }, (_, k) => k) // [1, 8, 1, 1] → [1, 2, 2, 2] (DCR)
    const d = await one({ x: [1, 8, 1, 1] }, { x },
      `    ${t([1, 2, 2, 2])} y = depth_to_space(x = x, block_size = int32(2))[name = string("y")];`)
    // out[c, i, j] = x[(i·2 + j)·2 + c]
    expect(Array.from(d.y!)).toEqual([0, 2, 4, 6, 1, 3, 5, 7])
  })

  it("rank-3 transpose, tile, pad, split, stack, slices match index loops", async () => {
    const x = Array.from({ length: 24 }, (_, i) => i + 1) // [2, 3, 4]
    const at = (i: number, j: number, k: number) => x[(i * 3 + j) * 4 + k]!
    const r = await one({ x: [2, 3, 4] }, { x }, `
    ${t([4, 2, 3])} tr = transpose(x = x, perm = ${lit("int32", [3], [2, 0, -2])})[name = string("tr")];
    ${t([2, 6, 4])} tl = tile(x = x, reps = ${lit("int32", [3], [1, 2, 1])})[name = string("tl")];
    ${t([2, 4, 7])} pc = pad(x = x, pad = ${lit("int32", [4], [0, 1, 2, 1])}, mode = string("constant"), constant_val = fp32(-1))[name = string("pc")];
    ${t([2, 3, 1])} s0, ${t([2, 3, 3])} s1 = split(x = x, split_sizes = ${lit("int32", [2], [1, 3])}, axis = int32(-1))[name = string("s")];
    ${t([2, 3, 2, 4])} st = stack(values = (x, x), axis = int32(2))[name = string("st")];
    ${t([2, 2])} sq = slice_by_index(x = x, begin = ${lit("int32", [3], [0, 9, 1])}, end = ${lit("int32", [3], [2, 0, 4])}, stride = ${lit("int32", [3], [1, 1, 2])}, squeeze_mask = ${lit("bool", [3], ["false", "true", "false"])})[name = string("sq")];
    ${t([1, 2, 4])} sz = slice_by_size(x = x, begin = ${lit("int32", [3], [-1, 1, 0])}, size = ${lit("int32", [3], [1, -1, 4])})[name = string("sz")];`,
      { tr: [], tl: [], pc: [], s1: [], st: [], sq: [], sz: [] })
    const loop = (dims: ReadonlyArray<number>, f: (...i: Array<number>) => number) => {
      const out: Array<number> = []
      const rec = (pre: Array<number>) => {
        if (pre.length === dims.length) { out.push(f(...pre)); return }
        for (let i = 0; i < dims[pre.length]!; i++) rec([...pre, i])
      }
      rec([])
      return out
    }
    expect(Array.from(r.tr!)).toEqual(loop([4, 2, 3], (k, i, j) => at(i, j, k)))
    expect(Array.from(r.tl!)).toEqual(loop([2, 6, 4], (i, j, k) => at(i, j % 3, k)))
    expect(Array.from(r.pc!)).toEqual(loop([2, 4, 7], (i, j, k) => (j < 3 && k >= 2 && k < 6 ? at(i, j, k - 2) : -1)))
    expect(Array.from(r.s1!)).toEqual(loop([2, 3, 3], (i, j, k) => at(i, j, k + 1)))
    expect(Array.from(r.st!)).toEqual(loop([2, 3, 2, 4], (i, j, _n, k) => at(i, j, k)))
    // begin 9 on the squeezed axis clamps to the last row.
    expect(Array.from(r.sq!)).toEqual(loop([2, 2], (i, k) => at(i, 2, 1 + 2 * k)))
    expect(Array.from(r.sz!)).toEqual(loop([1, 2, 4], (_i, j, k) => at(1, j + 1, k)))
  })

  it("range_1d counts up and down by fractional steps", async () => {
    const r = await one({ x: [1] }, { x: [0] }, `
    ${t([6])} u = range_1d(start = fp32(1), end = fp32(4), step = fp32(0.5))[name = string("u")];
    ${t([3])} d = range_1d(start = fp32(2), end = fp32(-1), step = fp32(-1.25))[name = string("d")];`, { u: [], d: [] })
    expect(Array.from(r.u!)).toEqual([1, 1.5, 2, 2.5, 3, 3.5])
    expect(Array.from(r.d!)).toEqual([2, 0.75, -0.5])
  })

  it("gather with negative indices, gather_along_axis, topk values and indices", async () => {
    const x = [10, 11, 12, 13, 20, 21, 22, 23] // [2, 4]
    const r = await one({ x: [2, 4] }, { x }, `
    ${t([2, 3])} g = gather(x = x, indices = ${lit("int32", [3], [3, -4, 1])}, axis = int32(1))[name = string("g")];
    ${t([2, 1])} ga = gather_along_axis(x = x, indices = ${lit("int32", [2, 1], [2, 0])}, axis = int32(1))[name = string("ga")];
    ${t([2, 2])} tv, ${t([2, 2], "int32")} ti = topk(x = x, k = int32(2), axis = int32(-1), ascending = bool(false))[name = string("tk")];`,
      { g: [], ga: [], tv: [] })
    expect(Array.from(r.g!)).toEqual([13, 10, 11, 23, 20, 21])
    expect(Array.from(r.ga!)).toEqual([12, 20])
    expect(Array.from(r.tv!)).toEqual([13, 12, 23, 22])
  })

  it("select broadcasts, cast truncates toward zero, comparisons give bools", async () => {
    const x = [-1.7, 0.2, 2.9, -0.4]
    const r = await one({ x: [1, 4] }, { x }, `
    ${t([1, 4], "bool")} pos = greater(x = x, y = fp32(0))[name = string("pos")];
    ${t([1, 4])} y = select(cond = pos, a = x, b = fp32(-9))[name = string("y")];
    ${t([1, 4], "int32")} i = cast(x = x, dtype = string("int32"))[name = string("i")];
    ${t([1, 4])} f = cast(x = i, dtype = string("fp32"))[name = string("f")];`, { y: [], f: [] })
    expect(Array.from(r.y!)).toEqual([-9, Math.fround(0.2), Math.fround(2.9), -9])
    expect(Array.from(r.f!)).toEqual([-1, 0, 2, 0])
  })
})

describe("slice_update", () => {
  const shape = [2, 3, 4]
  const x = randoms(24, 31)
  const idx = (a: number, b: number, c: number) => (a * 3 + b) * 4 + c

  it("replaces a strided window and leaves the rest of x alone", async () => {
    // x[:, 0:3:2, 1:3] = update (shape [2, 2, 2])
    const u = randoms(8, 32)
    const want = Array.from(x)
    let k = 0
    for (let a = 0; a < 2; a++) for (const b of [0, 2]) for (const c of [1, 2]) want[idx(a, b, c)] = u[k++]!
    const r = await one({ x: shape, u: [2, 2, 2] }, { x, u }, `    ${t(shape)} y = slice_update(x = x, update = u, ` +
      `begin = ${lit("int32", [3], [0, 0, 1])}, end = ${lit("int32", [3], [2, 3, 3])}, stride = ${lit("int32", [3], [1, 2, 1])})` +
      `[name = string("y")];`)
    expectClose(r.y!, want)
  })

  it("takes negative bounds, masks, a squeezed axis and a negative stride", async () => {
    // x[1, ::-1, -1] = update (shape [3]): axis 0 squeezed at 1, axis 1 reversed, axis 2 squeezed at -1.
    const u = randoms(3, 33)
    const want = Array.from(x)
    for (let j = 0; j < 3; j++) want[idx(1, 2 - j, 3)] = u[j]!
    const r = await one({ x: shape, u: [3] }, { x, u }, `    ${t(shape)} y = slice_update(x = x, update = u, ` +
      `begin = ${lit("int32", [3], [1, 0, -1])}, end = ${lit("int32", [3], [2, 0, 0])}, stride = ${lit("int32", [3], [1, -1, 1])}, ` +
      `begin_mask = ${lit("bool", [3], ["false", "true", "false"])}, end_mask = ${lit("bool", [3], ["false", "true", "false"])}, ` +
      `squeeze_mask = ${lit("bool", [3], ["true", "false", "true"])})[name = string("y")];`)
    expectClose(r.y!, want)
  })
})

describe("one_hot", () => {
  const ix = [2, 0, 7, 1, -1, 3]  // [2, 3]; 7 and -1 are out of range for size 4
  it("puts on_value at each index along the new axis, wherever the axis goes", async () => {
    for (const axis of [0, 1, 2, -1]) {
      const ax = axis < 0 ? 3 + axis : axis
      const dims = [2, 3]
      const shape = [...dims]
      shape.splice(ax, 0, 4)
      const want = new Array(24).fill(-1)
      for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) {
        const k = ix[a * 3 + b]!
        if (k < 0 || k >= 4) continue
        const pos = [a, b]
        pos.splice(ax, 0, k)
        want[(pos[0]! * shape[1]! + pos[1]!) * shape[2]! + pos[2]!] = 2.5
      }
      // The program's input is unused: the indices are a constant, as int32 cannot cross the I/O boundary.
      const indices = `tensor<int32, [2, 3]> i = const()[name = string("i"), val = ${lit("int32", [2, 3], ix)}];`
      const r = await one({ x: [1] }, { x: [0] }, `    ${indices}
    ${t(shape)} y = one_hot(indices = i, one_hot_vector_size = int32(4), axis = int32(${axis}), on_value = fp32(2.5), ` +
        `off_value = fp32(-1))[name = string("y")];`)
      expectClose(r.y!, want)
    }
  })
})

describe("upsample_nearest_neighbor", () => {
  it("repeats each pixel by integer and fractional scales, plane by plane", async () => {
    const shape = [2, 3, 4]
    const x = randoms(24, 41)
    for (const [sh, sw] of [[2, 3], [1.5, 1], [1, 2.5]] as const) {
      const OH = Math.floor(3 * sh), OW = Math.floor(4 * sw)
      const want: Array<number> = []
      for (let p = 0; p < 2; p++) for (let i = 0; i < OH; i++) for (let j = 0; j < OW; j++) {
        want.push(x[(p * 3 + Math.floor(i / sh)) * 4 + Math.floor(j / sw)]!)
      }
      const r = await one({ x: shape }, { x }, `    ${t([2, OH, OW])} y = upsample_nearest_neighbor(x = x, ` +
        `scale_factor_height = fp32(${sh}), scale_factor_width = fp32(${sw}))[name = string("y")];`)
      expectClose(r.y!, want)
    }
  })
})

describe("elementwise ops", () => {
  it("binary ops broadcast [2, 1, 3] with [4, 1] like a float64 loop", async () => {
    const a = randoms(6, 3).map((v) => Math.fround(v * 4)), b = randoms(4, 4).map((v) => Math.fround(v * 3 + 0.5))
    b[1] = a[2]! // one equal pair for the comparisons
    const ops: Record<string, (p: number, q: number) => number> = {
      add: (p, q) => p + q, sub: (p, q) => p - q, mul: (p, q) => p * q, real_div: (p, q) => p / q,
      floor_div: (p, q) => Math.floor(p / q), less: (p, q) => +(p < q), greater_equal: (p, q) => +(p >= q),
      equal: (p, q) => +(p === q), not_equal: (p, q) => +(p !== q)
    }
    const bools = new Set(["less", "greater_equal", "equal", "not_equal"])
    const body = Object.keys(ops).map((n) =>
      `    ${t([2, 4, 3], bools.has(n) ? "bool" : "fp32")} ${n}_y = ${n}(x = a, y = b)[name = string("${n}_y")];`).join("\n")
    const outs = Object.fromEntries(Object.keys(ops).filter((n) => !bools.has(n)).map((n) => [`${n}_y`, []]))
    const casts = [...bools].map((n) =>
      `    ${t([2, 4, 3])} ${n}_f = cast(x = ${n}_y, dtype = string("fp32"))[name = string("${n}_f")];`).join("\n")
    for (const n of bools) outs[`${n}_f`] = []
    const r = await one({ a: [2, 1, 3], b: [4, 1] }, { a, b }, `${body}\n${casts}`, outs)
    for (const [n, f] of Object.entries(ops)) {
      const want: Array<number> = []
      for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 3; k++) {
        want.push(Math.fround(f(a[i * 3 + k]!, b[j]!)))
      }
      expect(Array.from(r[bools.has(n) ? `${n}_f` : `${n}_y`]!), n).toEqual(want)
    }
  })

  it("unary math and activations match float64 formulas", async () => {
    const x = randoms(16, 5).map((v) => Math.fround(v * 0.9))
    const sig = (v: number) => 1 / (1 + Math.exp(-v))
    const ops: Record<string, [string, (v: number) => number]> = {
      abs: ["", Math.abs], sqrt: ["", (v) => Math.sqrt(v)], exp: ["", Math.exp], exp2: ["", (v) => 2 ** v],
      tanh: ["", Math.tanh], sigmoid: ["", sig], relu: ["", (v) => Math.max(v, 0)], silu: ["", (v) => v * sig(v)],
      floor: ["", Math.floor], ceil: ["", Math.ceil], sign: ["", Math.sign], sin: ["", Math.sin], cos: ["", Math.cos],
      tan: ["", Math.tan], asin: ["", Math.asin], acos: ["", Math.acos], atan: ["", Math.atan], sinh: ["", Math.sinh],
      cosh: ["", Math.cosh], atanh: ["", Math.atanh], softsign: ["", (v) => v / (1 + Math.abs(v))],
      square: ["", (v) => v * v], round: ["", (v) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5)],
      rsqrt: [", epsilon = fp32(0.5)", (v) => 1 / Math.sqrt(v + 0.5)],
      inverse: [", epsilon = fp32(0.25)", (v) => 1 / (v + 0.25)],
      log: [", epsilon = fp32(1)", (v) => Math.log(v + 1)],
      leaky_relu: [", alpha = fp32(0.125)", (v) => (v >= 0 ? v : 0.125 * v)],
      scaled_tanh: [", alpha = fp32(2), beta = fp32(0.5)", (v) => 2 * Math.tanh(0.5 * v)],
      sigmoid_hard: [", alpha = fp32(0.25), beta = fp32(0.5)", (v) => Math.min(1, Math.max(0, 0.25 * v + 0.5))],
      linear_activation: [", alpha = fp32(3), beta = fp32(-1)", (v) => 3 * v - 1]
    }
    const inputs = { x, p: x.map(Math.abs), r: x.map((v) => Math.fround(v * 3)) }
    const src = (n: string) => (n === "sqrt" || n === "rsqrt" || n === "log" ? "p" : n === "round" ? "r" : "x")
    const body = Object.entries(ops).map(([n, [extra]]) =>
      `    ${t([16])} ${n}_y = ${n}(x = ${src(n)}${extra})[name = string("${n}_y")];`).join("\n")
    const r = await one({ x: [16], p: [16], r: [16] }, inputs, body,
      Object.fromEntries(Object.keys(ops).map((n) => [`${n}_y`, []])))
    for (const [n, [, f]] of Object.entries(ops)) {
      const inp = src(n) === "p" ? inputs.p : src(n) === "r" ? inputs.r : x
      const got = r[`${n}_y`]!
      Array.from(inp, f).forEach((w, i) => expect(Math.abs(got[i]! - w), n).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(w))))
    }
  })
})

describe("pooling, activations, recurrent", () => {
  it("max_pool ignores padding, avg_pool counts it unless excluded", async () => {
    const x = [1, -2, 3, -4, 5, -6] // [1, 1, 6]
    const r = await one({ x: [1, 1, 6] }, { x }, `
    ${t([1, 1, 3])} m = max_pool(x = x, kernel_sizes = ${lit("int32", [1], [3])}, strides = ${lit("int32", [1], [2])}, pad_type = string("custom"), pad = ${lit("int32", [2], [1, 0])})[name = string("m")];
    ${t([1, 1, 3])} a = avg_pool(x = x, kernel_sizes = ${lit("int32", [1], [3])}, strides = ${lit("int32", [1], [2])}, pad_type = string("custom"), pad = ${lit("int32", [2], [1, 0])}, exclude_padding_from_average = bool(false))[name = string("a")];`,
      { m: [], a: [] })
    expect(Array.from(r.m!)).toEqual([1, 3, 5])
    expectClose(r.a!, [(0 + 1 - 2) / 3, (-2 + 3 - 4) / 3, (-4 + 5 - 6) / 3])
  })

  it("erf, gelu (exact and tanh), silu, sigmoid against float64 formulas", async () => {
    const x = Array.from({ length: 41 }, (_, i) => (i - 20) / 6.5)
    // Reference erf by its Maclaurin series in float64 (accurate to ~1e-12 for |x| ≤ 3.1).
    const erfRef = (z: number) => {
      let term = z, sum = z
      for (let k = 1; k < 200; k++) {
        term *= (-z * z) / k
        sum += term / (2 * k + 1)
      }
      return (2 / Math.sqrt(Math.PI)) * sum
    }
    for (const z of x) expect(Math.abs(erf(z) - erfRef(z))).toBeLessThan(5e-7)
    const r = await one({ x: [41] }, { x }, `
    ${t([41])} e = erf(x = x)[name = string("e")];
    ${t([41])} g = gelu(x = x, mode = string("EXACT"))[name = string("g")];
    ${t([41])} gt = gelu(x = x, mode = string("TANH_APPROXIMATION"))[name = string("gt")];
    ${t([41])} s = silu(x = x)[name = string("s")];`, { e: [], g: [], gt: [], s: [] })
    expectClose(r.e!, x.map(erfRef))
    expectClose(r.g!, x.map((z) => 0.5 * z * (1 + erfRef(z / Math.SQRT2))))
    expectClose(r.gt!, x.map((z) => 0.5 * z * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (z + 0.044715 * z ** 3)))))
    expectClose(r.s!, x.map((z) => z / (1 + Math.exp(-z))))
  })

  it("lstm (forward, i f o z gate order, peephole, output_sequence) matches a float64 step loop", async () => {
    const S = 3, I = 2, H = 2
    const x = randoms(S * I, 20), wih = randoms(4 * H * I, 21), whh = randoms(4 * H * H, 22)
    const b = randoms(4 * H, 23), p = randoms(3 * H, 24), h0 = randoms(H, 25), c0 = randoms(H, 26)
    const sig = (z: number) => 1 / (1 + Math.exp(-z))
    let h = Array.from(h0), c = Array.from(c0)
    const seq: Array<number> = []
    for (let s = 0; s < S; s++) {
      const g = Array.from({ length: 4 * H }, (_, r) =>
        b[r]! + [0, 1].reduce((a, k) => a + wih[r * I + k]! * x[s * I + k]!, 0) + [0, 1].reduce((a, k) => a + whh[r * H + k]! * h[k]!, 0))
      const cn = c.map((cp, j) => sig(g[H + j]! + p[H + j]! * cp) * cp + sig(g[j]! + p[j]! * cp) * Math.tanh(g[3 * H + j]!))
      h = cn.map((cv, j) => sig(g[2 * H + j]! + p[2 * H + j]! * cv) * Math.tanh(cv))
      c = cn
      seq.push(...h)
    }
    const r = await one({ x: [S, 1, I], h0: [1, H], c0: [1, H] }, { x, h0, c0 }, `
    ${t([4 * H, I])} wih = const()[name = string("wih"), val = ${lit("fp32", [4 * H, I], wih)}];
    ${t([4 * H, H])} whh = const()[name = string("whh"), val = ${lit("fp32", [4 * H, H], whh)}];
    ${t([4 * H])} b = const()[name = string("b"), val = ${lit("fp32", [4 * H], b)}];
    ${t([3 * H])} p = const()[name = string("p"), val = ${lit("fp32", [3 * H], p)}];
    ${t([S, 1, H])} o, ${t([1, H])} hn, ${t([1, H])} cn = lstm(x = x, initial_h = h0, initial_c = c0, weight_ih = wih, weight_hh = whh, bias = b, peephole = p, direction = string("forward"), output_sequence = bool(true), recurrent_activation = string("sigmoid"), cell_activation = string("tanh"), activation = string("tanh"))[name = string("l")];`,
      { o: [], hn: [], cn: [] })
    expectClose(r.o!, seq)
    expectClose(r.hn!, h)
    expectClose(r.cn!, c)
  })
})

describe("weight decompression and quantization", () => {
  it("constexpr_affine_dequantize, constexpr_lut_to_dense (2-bit) and constexpr_sparse_to_dense (iOS16 forms)", async () => {
    const q = [-3, 0, 5, 7, -1, 2] // int8 [2, 3], per-row scale and zero point
    const lut = [0.5, -1, 2, 8]
    const idx = [3, 0, 2, 1, 1, 2] // 2-bit, LSB first
    const packed = [idx[0]! | (idx[1]! << 2) | (idx[2]! << 4) | (idx[3]! << 6), idx[4]! | (idx[5]! << 2)]
    const mask = [0b00100101] // ones at flat positions 0, 2, 5 of 6
    const blob = writeBlobFile([
      { dtype: "int8", data: q },
      { dtype: "uint8", data: packed },
      { dtype: "uint8", data: mask }
    ])
    if (!("bytes" in blob)) throw blob
    const [oq, op, om] = blob.offsets
    const path = "@model_path/weights/weight.bin"
    const bf = (type: string, off: number) => `${type}(BLOBFILE(path = string("${path}"), offset = uint64(${off})))`
    const r = await one({ x: [2, 3] }, { x: [0, 0, 0, 0, 0, 0] }, `
    ${t([2, 3])} a = constexpr_affine_dequantize()[axis = int32(0), name = string("a"), quantized_data = ${bf(t([2, 3], "int8"), oq!)}, scale = ${lit("fp32", [2], [0.5, 2])}, zero_point = ${lit("int8", [2], [1, -1])}];
    ${t([2, 3])} l = constexpr_lut_to_dense()[indices = ${bf(t([2], "uint8"), op!)}, lut = ${lit("fp32", [4], lut)}, name = string("l"), shape = ${lit("uint32", [2], [2, 3])}];
    ${t([2, 3])} s = constexpr_sparse_to_dense()[mask = ${bf(t([1], "uint8"), om!)}, name = string("s"), nonzero_data = ${lit("fp32", [3], [4, 5, 6])}, shape = ${lit("uint32", [2], [2, 3])}];
    ${t([2, 3])} ya = add(x = x, y = a)[name = string("ya")];
    ${t([2, 3])} yl = add(x = x, y = l)[name = string("yl")];
    ${t([2, 3])} ys = add(x = x, y = s)[name = string("ys")];`, { ya: [], yl: [], ys: [] }, [{ path, bytes: blob.bytes }])
    expect(Array.from(r.ya!)).toEqual([-2, -0.5, 2, 16, 0, 6])
    expect(Array.from(r.yl!)).toEqual(idx.map((i) => lut[i]!))
    expect(Array.from(r.ys!)).toEqual([4, 0, 5, 0, 0, 6])
  })

  it("quantize rounds half to even and saturates; dequantize inverts", async () => {
    const x = [0.25, 0.75, 100, -100, 1.25]
    const r = await one({ x: [5] }, { x }, `
    ${t([5], "int8")} q = quantize(input = x, scale = fp32(0.5), zero_point = int8(1), output_dtype = string("int8"))[name = string("q")];
    ${t([5])} y = dequantize(input = q, scale = fp32(0.5), zero_point = int8(1))[name = string("y")];`)
    // 0.5 → 0 (even) +1; 1.5 → 2 +1; 200 → 127; −200 → −128; 2.5 → 2 +1
    expect(Array.from(r.y!)).toEqual([0, 1, 63, -64.5, 1])
  })

  it("per-axis quantize (uint8, scalar zero point) and dequantize match a float64 loop", async () => {
    const x = Array.from(randoms(12, 7), (v) => Math.fround(v * 40)) // [2, 3, 2], axis 1
    const sc = [0.5, 0.25, 2], zp = [3, 128, 250]
    const r = await one({ x: [2, 3, 2] }, { x }, `
    ${t([3])} s = const()[name = string("s"), val = ${lit("fp32", [3], sc)}];
    ${t([3], "uint8")} z = const()[name = string("z"), val = ${lit("uint8", [3], zp)}];
    ${t([2, 3, 2], "uint8")} q = quantize(input = x, scale = s, zero_point = uint8(7), axis = int32(-2), output_dtype = string("uint8"))[name = string("q")];
    ${t([2, 3, 2])} y = dequantize(input = q, scale = s, zero_point = z, axis = int32(1))[name = string("y")];`)
    const even = (v: number) => { const f = Math.floor(v); return v - f > 0.5 || (v - f === 0.5 && f % 2 !== 0) ? f + 1 : f }
    const want = x.map((v, i) => {
      const c = Math.floor(i / 2) % 3
      const q = Math.min(255, Math.max(0, even(v / sc[c]!) + 7))
      return Math.fround(sc[c]! * (q - zp[c]!))
    })
    expect(Array.from(r.y!)).toEqual(want)
  })
})

describe("less common ops", () => {
  it("conv_transpose is the adjoint of conv (stride 2, custom crop)", async () => {
    const Cin = 2, Cout = 3, D = 4, K = 3, S = 2
    const x = randoms(Cin * D, 30), w = randoms(Cin * Cout * K, 31) // weight [Cin, Cout, K]
    const full = (D - 1) * S + K
    const ref = new Float64Array(Cout * full)
    for (let ci = 0; ci < Cin; ci++) for (let i = 0; i < D; i++) for (let co = 0; co < Cout; co++) for (let k = 0; k < K; k++) {
      ref[co * full + i * S + k] += x[ci * D + i]! * w[(ci * Cout + co) * K + k]!
    }
    const O = full - 2 // crop one before, one after
    const cropped = Array.from({ length: Cout * O }, (_, j) => ref[Math.floor(j / O) * full + (j % O) + 1]!)
    const r = await one({ x: [1, Cin, D] }, { x }, `
    ${t([Cin, Cout, K])} w = const()[name = string("w"), val = ${lit("fp32", [Cin, Cout, K], w)}];
    ${t([1, Cout, O])} y = conv_transpose(x = x, weight = w, strides = ${lit("int32", [1], [S])}, pad_type = string("custom"), pad = ${lit("int32", [2], [1, 1])})[name = string("y")];`)
    expectClose(r.y!, cropped)
  })

  it("space_to_depth inverts depth_to_space; prelu, instance_norm, l2_pool, fill, neg", async () => {
    const x = randoms(2 * 4 * 4, 32) // [1, 2, 4, 4]
    const g = [1.5, -0.5], b = [0.25, 0]
    const r = await one({ x: [1, 2, 4, 4] }, { x }, `
    ${t([1, 8, 2, 2])} s = space_to_depth(x = x, block_size = int32(2))[name = string("s")];
    ${t([1, 2, 4, 4])} d = depth_to_space(x = s, block_size = int32(2))[name = string("d")];
    ${t([1, 2, 4, 4])} p = prelu(x = x, alpha = ${lit("fp32", [2], [0.1, 0.2])})[name = string("p")];
    ${t([1, 2, 4, 4])} n = instance_norm(x = x, gamma = ${lit("fp32", [2], g)}, beta = ${lit("fp32", [2], b)}, epsilon = fp32(1e-5))[name = string("n")];
    ${t([1, 2, 2, 2])} l = l2_pool(x = x, kernel_sizes = ${lit("int32", [2], [2, 2])}, strides = ${lit("int32", [2], [2, 2])}, pad_type = string("valid"))[name = string("l")];
    ${t([2, 3])} f = fill(shape = ${lit("int32", [2], [2, 3])}, value = fp32(7))[name = string("f")];
    ${t([1, 2, 4, 4])} m = neg(x = x)[name = string("m")];`, { d: [], p: [], n: [], l: [], f: [], m: [] })
    expect(Array.from(r.d!)).toEqual(Array.from(x))
    expectClose(r.p!, Array.from(x, (v, i) => (v >= 0 ? v : (i < 16 ? 0.1 : 0.2) * v)))
    const norm: Array<number> = []
    for (let c = 0; c < 2; c++) {
      const seg = Array.from(x.subarray(c * 16, c * 16 + 16))
      const mean = seg.reduce((a, q) => a + q, 0) / 16
      const v = seg.reduce((a, q) => a + (q - mean) ** 2, 0) / 16
      seg.forEach((q) => norm.push(((q - mean) / Math.sqrt(v + 1e-5)) * g[c]! + b[c]!))
    }
    expectClose(r.n!, norm)
    const l2: Array<number> = []
    for (let c = 0; c < 2; c++) for (let oh = 0; oh < 2; oh++) for (let ow = 0; ow < 2; ow++) {
      let s = 0
      for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) s += x[(c * 4 + oh * 2 + i) * 4 + ow * 2 + j]! ** 2
      l2.push(Math.sqrt(s))
    }
    expectClose(r.l!, l2)
    expect(Array.from(r.f!)).toEqual([7, 7, 7, 7, 7, 7])
    expect(Array.from(r.m!)).toEqual(Array.from(x, (v) => -v))
  })
})
