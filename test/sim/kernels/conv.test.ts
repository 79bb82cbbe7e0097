import { describe, expect, it } from "@effect/vitest"
import { afterAll } from "vitest"
import {
  avgPool, conv, convTranspose, maxPool, packConvWeight, planConv, planConvTranspose, planPool, setFma,
  setKernelBackend, sizeOf
} from "../../../src/sim/kernels/index.js"
import { PACKED_CONV_MAX_POSITIONS } from "../../../src/sim/kernels/conv.js"
import { expectWithin, fails, ok, rand, sumBound } from "./helpers.js"

afterAll(() => { setKernelBackend("auto") })

interface Geo { s: Array<number>; d: Array<number>; pads: Array<number>; g: number }

// float64 reference of conv over 1–3 spatial dims, straight from the definition (zero padding).
const refConv = (
  xs: Array<number>, ws: Array<number>, x: Float32Array, w: Float32Array, b: Float32Array | undefined, geo: Geo
) => {
  const r = xs.length - 2
  const pad3 = (v: Array<number>, f: number) => [...Array(3 - v.length).fill(f), ...v]
  const [ID, IH, IW] = pad3(xs.slice(2), 1), [KD, KH, KW] = pad3(ws.slice(2), 1)
  const [SD, SH, SW] = pad3(geo.s, 1), [DD, DH, DW] = pad3(geo.d, 1)
  const before = pad3(geo.pads.filter((_, i) => i % 2 === 0), 0), after = pad3(geo.pads.filter((_, i) => i % 2 === 1), 0)
  const o = (I: number, K: number, S: number, Dl: number, pb: number, pa: number) => Math.floor((I + pb + pa - (K - 1) * Dl - 1) / S) + 1
  const OD = o(ID, KD, SD, DD, before[0], after[0]), OH = o(IH, KH, SH, DH, before[1], after[1]), OW = o(IW, KW, SW, DW, before[2], after[2])
  const N = xs[0]!, C = xs[1]!, CO = ws[0]!, cg = C / geo.g, og = CO / geo.g
  const out: Array<number> = [], bound: Array<number> = []
  for (let n = 0; n < N; n++) for (let co = 0; co < CO; co++) {
    const gi = Math.floor(co / og)
    for (let od = 0; od < OD; od++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
      let s = b ? b[co]! : 0, abs = Math.abs(s), terms = 1
      for (let ci = 0; ci < cg; ci++) for (let kd = 0; kd < KD; kd++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
        const id = od * SD - before[0] + kd * DD, ih = oh * SH - before[1] + kh * DH, iw = ow * SW - before[2] + kw * DW
        terms++
        if (id < 0 || id >= ID || ih < 0 || ih >= IH || iw < 0 || iw >= IW) continue
        const xv = x[(((n * C + gi * cg + ci) * ID + id) * IH + ih) * IW + iw]!
        const wv = w[(((co * cg + ci) * KD + kd) * KH + kh) * KW + kw]!
        s += xv * wv
        abs += Math.abs(xv * wv)
      }
      out.push(s)
      bound.push(sumBound(terms, abs))
    }
  }
  const outSp = [OD, OH, OW].slice(3 - r)
  return { out, bound, shape: [N, CO, ...outSp] }
}

const cases: Array<[string, Array<number>, Array<number>, Geo]> = [
  ["1-D plain", [2, 3, 10], [4, 3, 3], { s: [1], d: [1], pads: [0, 0], g: 1 }],
  ["1-D strided, dilated, padded", [1, 4, 17], [6, 4, 3], { s: [2], d: [3], pads: [2, 1], g: 1 }],
  ["2-D pointwise (the matmul route)", [2, 8, 3, 5], [6, 8, 1, 1], { s: [1, 1], d: [1, 1], pads: [0, 0, 0, 0], g: 1 }],
  ["2-D 3×3 same-style pads", [1, 3, 7, 6], [5, 3, 3, 3], { s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], g: 1 }],
  ["2-D asymmetric stride/dilation/pads", [2, 4, 9, 8], [4, 4, 2, 3], { s: [2, 3], d: [2, 1], pads: [0, 2, 1, 0], g: 1 }],
  ["2-D groups", [1, 6, 5, 5], [9, 2, 3, 3], { s: [1, 1], d: [1, 1], pads: [1, 1, 1, 1], g: 3 }],
  ["2-D depthwise", [2, 5, 6, 7], [5, 1, 3, 3], { s: [2, 2], d: [1, 1], pads: [1, 1, 1, 1], g: 5 }],
  ["1×1 strided (not pointwise)", [1, 4, 6, 6], [3, 4, 1, 1], { s: [2, 2], d: [1, 1], pads: [0, 0, 0, 0], g: 1 }],
  ["3-D", [1, 2, 4, 5, 3], [3, 2, 2, 3, 2], { s: [1, 2, 1], d: [1, 1, 2], pads: [1, 0, 0, 1, 1, 1], g: 1 }]
]

describe.each(["wasm", "js"] as const)("conv on %s", (backend) => {
  it.each(cases)("%s matches the float64 definition", (_, xs, ws, geo) => {
    ok(setKernelBackend(backend))
    const x = rand(sizeOf(xs), 1), w = rand(sizeOf(ws), 2), b = rand(ws[0]!, 3)
    const plan = ok(planConv(xs, ws, { strides: geo.s, dilations: geo.d, pads: geo.pads, groups: geo.g }))
    for (const bias of [b, undefined]) {
      const ref = refConv(xs, ws, x, w, bias, geo)
      expect(plan.outShape).toEqual(ref.shape)
      const out = new Float32Array(sizeOf(plan.outShape)).fill(NaN)
      conv(plan, x, w, bias, out)
      expectWithin(out, ref.out, ref.bound, "conv")
    }
  })
})

describe.each(["wasm", "js"] as const)("conv with a packed weight on %s", (backend) => {
  it.each(cases)("%s gives the same bits as with the weight packed per call", (_, xs, ws, geo) => {
    ok(setKernelBackend(backend))
    setFma(false)
    const x = rand(sizeOf(xs), 4), w = rand(sizeOf(ws), 5), b = rand(ws[0]!, 6)
    const plan = ok(planConv(xs, ws, { strides: geo.s, dilations: geo.d, pads: geo.pads, groups: geo.g }))
    const packed = packConvWeight(plan, w)
    expect(packed?.length).toBe(geo.g)
    for (const bias of [b, undefined]) {
      const plain = new Float32Array(sizeOf(plan.outShape)), viaPacked = new Float32Array(sizeOf(plan.outShape))
      conv(plan, x, w, bias, plain)
      conv(plan, x, w, bias, viaPacked, packed)
      expect(Array.from(viaPacked)).toEqual(Array.from(plain))
    }
    setFma(true)
  })

  it("is not packed when the output has many positions (the weight stays the GEMM's A)", () => {
    const plan = ok(planConv([1, 4, 1, PACKED_CONV_MAX_POSITIONS], [3, 4, 1, 1]))
    expect(packConvWeight(plan, rand(12, 7))).toBeUndefined()
  })
})

describe("planConv", () => {
  it("routes a 1×1 stride-1 unpadded conv to the matmul (no scratch)", () => {
    const p = ok(planConv([1, 512, 1, 256], [512, 512, 1, 1]))
    expect(p.pointwise).toBe(true)
    expect(p.scratch.length).toBe(0)
    expect(ok(planConv([1, 4, 1, 8], [4, 4, 1, 1], { pads: [0, 0, 1, 0] })).pointwise).toBe(false)
  })
  it("rejects channel counts that do not match the groups", () => {
    const e = fails(planConv([1, 6, 5, 5], [4, 3, 3, 3], { groups: 3 }))
    expect(e.argument).toBe("weight")
    expect(e.message).toContain("groups=3")
  })
  it("rejects a kernel larger than the padded input, bad strides and wrong pad counts", () => {
    expect(fails(planConv([1, 1, 4], [1, 1, 5])).argument).toBe("weight")
    expect(fails(planConv([1, 1, 4], [1, 1, 3], { strides: [0] })).argument).toBe("strides")
    expect(fails(planConv([1, 1, 4, 4], [1, 1, 3, 3], { pads: [1, 1] })).argument).toBe("pads")
    expect(fails(planConv([1, 4], [1, 1])).argument).toBe("x")
  })
})

// float64 reference of conv_transpose: every input element scatters x·w into the (uncropped) output.
const refConvT = (
  xs: Array<number>, ws: Array<number>, x: Float32Array, w: Float32Array, b: Float32Array | undefined,
  s: Array<number>, d: Array<number>, pads: Array<number>, g: number, outSp: Array<number>
) => {
  const [N, C, IH, IW] = xs.length === 4 ? xs : [xs[0]!, xs[1]!, 1, xs[2]!]
  const [KH, KW] = ws.length === 4 ? ws.slice(2) : [1, ws[2]!]
  const [SH, SW] = s.length === 2 ? s : [1, s[0]!]
  const [DH, DW] = d.length === 2 ? d : [1, d[0]!]
  const [PH, PW] = pads.length === 4 ? [pads[0]!, pads[2]!] : [0, pads[0]!]
  const [OH, OW] = outSp.length === 2 ? outSp : [1, outSp[0]!]
  const og = ws[1]!, CO = og * g, cg = C / g
  const out = new Float64Array(N * CO * OH * OW), abs = new Float64Array(out.length), cnt = new Float64Array(out.length)
  for (let n = 0; n < N; n++) for (let co = 0; co < CO; co++) for (let i = 0; i < OH * OW; i++) {
    out[(n * CO + co) * OH * OW + i] = b ? b[co]! : 0
  }
  for (let n = 0; n < N; n++) for (let ci = 0; ci < C; ci++) {
    const gi = Math.floor(ci / cg)
    for (let ih = 0; ih < IH; ih++) for (let iw = 0; iw < IW; iw++) for (let c = 0; c < og; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const oh = ih * SH - PH + kh * DH, ow = iw * SW - PW + kw * DW
      if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue
      const v = x[((n * C + ci) * IH + ih) * IW + iw]! * w[((ci * og + c) * KH + kh) * KW + kw]!
      const q = ((n * CO + gi * og + c) * OH + oh) * OW + ow
      out[q]! += v
      abs[q]! += Math.abs(v)
      cnt[q]!++
    }
  }
  return { out, bound: Array.from(out, (_, i) => sumBound(cnt[i]! + 1 + C, abs[i]! + (b ? 1 : 0))) }
}

describe.each(["wasm", "js"] as const)("convTranspose on %s", (backend) => {
  it.each([
    ["1-D stride 2", [1, 3, 5], [3, 2, 3], [2], [1], [0, 0], 1],
    ["2-D stride 2 with crop pads", [2, 4, 3, 4], [4, 3, 3, 3], [2, 2], [1, 1], [1, 1, 1, 1], 1],
    ["2-D groups and dilation", [1, 4, 3, 3], [4, 1, 2, 2], [1, 2], [2, 1], [0, 0, 0, 0], 2]
  ] as Array<[string, Array<number>, Array<number>, Array<number>, Array<number>, Array<number>, number]>)(
    "%s matches the scatter definition", (_, xs, ws, s, d, pads, g) => {
      ok(setKernelBackend(backend))
      const x = rand(sizeOf(xs), 4), w = rand(sizeOf(ws), 5), b = rand(ws[1]! * g, 6)
      const plan = ok(planConvTranspose(xs, ws, { strides: s, dilations: d, pads, groups: g }))
      const outSp = plan.outShape.slice(2)
      // Default size: (D−1)·s + (K−1)·d + 1 − pads.
      const r = xs.length - 2
      for (let i = 0; i < r; i++) {
        expect(outSp[i]).toBe((xs[2 + i]! - 1) * s[i]! + (ws[2 + i]! - 1) * d[i]! + 1 - pads[2 * i]! - pads[2 * i + 1]!)
      }
      const out = new Float32Array(sizeOf(plan.outShape))
      convTranspose(plan, x, w, b, out)
      const ref = refConvT(xs, ws, x, w, b, s, d, pads, g, [...outSp])
      expectWithin(out, ref.out, ref.bound, "conv_transpose")
    })

  it("honours an explicit output size (extra elements at the end)", () => {
    ok(setKernelBackend(backend))
    const xs = [1, 2, 4], ws = [2, 3, 3]
    const x = rand(8, 7), w = rand(18, 8)
    const plan = ok(planConvTranspose(xs, ws, { strides: [2], outputSpatial: [10] }))
    expect(plan.outShape).toEqual([1, 3, 10])
    const out = new Float32Array(30)
    convTranspose(plan, x, w, undefined, out)
    const ref = refConvT(xs, ws, x, w, undefined, [2], [1], [0, 0], 1, [10])
    expectWithin(out, ref.out, ref.bound)
  })
})

describe("planConvTranspose errors", () => {
  it("rejects a weight whose first dim is not C_in", () => {
    expect(fails(planConvTranspose([1, 4, 5], [3, 2, 3])).message).toContain("C_in=4")
  })
})

// float64 pooling reference over 2-D windows (1-D as H = 1), padding excluded from max.
const refPool = (
  xs: Array<number>, x: Float32Array, k: Array<number>, s: Array<number>, pads: Array<number>,
  outSp: Array<number>, mode: "max" | "avg", exclude: boolean
): Array<number> => {
  const [N, C, IH, IW] = xs.length === 4 ? xs : [xs[0]!, xs[1]!, 1, xs[2]!]
  const [KH, KW] = k.length === 2 ? k : [1, k[0]!]
  const [SH, SW] = s.length === 2 ? s : [1, s[0]!]
  const [PT, PB, PL, PR] = pads.length === 4 ? pads : [0, 0, pads[0]!, pads[1]!]
  const [OH, OW] = outSp.length === 2 ? outSp : [1, outSp[0]!]
  const out: Array<number> = []
  for (let p = 0; p < N * C; p++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let m = -Infinity, sum = 0, real = 0, padded = 0
    for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const ih = oh * SH - PT + kh, iw = ow * SW - PL + kw
      if (ih >= -PT && ih < IH + PB && iw >= -PL && iw < IW + PR) padded++
      if (ih < 0 || ih >= IH || iw < 0 || iw >= IW) continue
      const v = x[(p * IH + ih) * IW + iw]!
      m = Math.max(m, v)
      sum += v
      real++
    }
    out.push(mode === "max" ? m : sum / (exclude ? real : padded))
  }
  return out
}

describe("pooling", () => {
  it.each([
    ["2-D 2×2 stride 2", [2, 3, 6, 6], [2, 2], [2, 2], [0, 0, 0, 0], false, false, [3, 3]],
    ["2-D 3×3 padded, padding counted", [1, 2, 5, 7], [3, 3], [2, 2], [1, 1, 1, 1], false, false, [3, 4]],
    ["2-D 3×3 padded, padding excluded", [1, 2, 5, 7], [3, 3], [2, 2], [1, 1, 1, 1], true, false, [3, 4]],
    ["2-D ceil_mode", [1, 1, 6, 6], [3, 3], [2, 2], [0, 0, 0, 0], false, true, [3, 3]],
    ["2-D ceil_mode with pads", [1, 2, 5, 5], [2, 2], [2, 2], [1, 1, 1, 1], false, true, [3, 3]],
    ["1-D", [2, 2, 9], [3], [2], [1, 0], true, false, [4]]
  ] as Array<[string, Array<number>, Array<number>, Array<number>, Array<number>, boolean, boolean, Array<number>]>)(
    "%s (max and avg) match the window definition", (_, xs, k, s, pads, exclude, ceilMode, outSp) => {
      const x = rand(sizeOf(xs), 9)
      const plan = ok(planPool(xs, { kernel: k, strides: s, pads, excludePaddingFromAverage: exclude, ceilMode }))
      expect(plan.outShape).toEqual([xs[0], xs[1], ...outSp])
      const out = new Float32Array(sizeOf(plan.outShape))
      maxPool(plan, x, out)
      expectWithin(out, refPool(xs, x, k, s, pads, outSp, "max", exclude), 0, "max")
      avgPool(plan, x, out)
      const ref = refPool(xs, x, k, s, pads, outSp, "avg", exclude)
      expectWithin(out, ref, sumBound(k.reduce((a, b) => a * b, 1) + 1, 1), "avg")
    })

  it("never lets zero padding win a max over negative data", () => {
    const x = Float32Array.from([-3, -2, -5, -1])
    const plan = ok(planPool([1, 1, 4], { kernel: [3], strides: [1], pads: [1, 1] }))
    const out = new Float32Array(4)
    maxPool(plan, x, out)
    expect(Array.from(out)).toEqual([-2, -2, -1, -1])
  })

  it("rejects a kernel of the wrong rank and windows that do not fit", () => {
    expect(fails(planPool([1, 1, 4, 4], { kernel: [2] })).argument).toBe("kernel")
    expect(fails(planPool([1, 1, 2, 2], { kernel: [3, 3] })).argument).toBe("kernel")
    expect(fails(planPool([1, 1, 4, 4], { kernel: [2, 2], pads: [-1, 0, 0, 0] })).argument).toBe("pads")
  })
})

describe("conv backends", () => {
  it("wasm and JS give bit-identical conv and conv_transpose results", () => {
    const xs = [2, 6, 9, 7], ws = [8, 3, 3, 2]
    const x = rand(sizeOf(xs), 21), w = rand(sizeOf(ws), 22), b = rand(8, 23)
    const plan = ok(planConv(xs, ws, { strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1], groups: 2 }))
    const tw = rand(6 * 4 * 9, 24)
    const tplan = ok(planConvTranspose([1, 6, 4, 5], [6, 4, 3, 3], { strides: [2, 2], pads: [1, 1, 0, 0] }))
    const tx = rand(120, 25)
    const run = (backend: "wasm" | "js") => {
      ok(setKernelBackend(backend))
      const out = new Float32Array(sizeOf(plan.outShape)), tout = new Float32Array(sizeOf(tplan.outShape))
      conv(plan, x, w, b, out)
      convTranspose(tplan, tx, tw, undefined, tout)
      return [Array.from(out), Array.from(tout)]
    }
    expect(run("wasm")).toEqual(run("js"))
  })
})
