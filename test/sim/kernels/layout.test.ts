import { describe, expect, it } from "@effect/vitest"
import {
  concat, gather, gatherAlongAxis, mappedCopy, oneHot, planConcat, planDepthToSpace, planGather, planGatherAlongAxis,
  planPad, planPixelShuffle, planSlice, planSpaceToDepth, planSplit, planTile, planTopk, planTranspose, range1d,
  rangeLength, sizeOf, split, stridedCopy, topk
} from "../../../src/sim/kernels/index.js"
import { fails, ok, rand } from "./helpers.js"

const coords = (shape: Array<number>, q: number): Array<number> => {
  const c: Array<number> = []
  for (let d = shape.length - 1; d >= 0; d--) { c.unshift(q % shape[d]!); q = Math.floor(q / shape[d]!) }
  return c
}
const flat = (shape: Array<number>, c: Array<number>): number => c.reduce((a, v, d) => a * shape[d]! + v, 0)
const iota = (n: number) => Float32Array.from({ length: n }, (_, i) => i)

describe("transpose", () => {
  it("moves x dim perm[i] to out dim i (negative perm entries allowed)", () => {
    const xs = [2, 3, 4, 5]
    const x = iota(120)
    const plan = ok(planTranspose(xs, [2, 0, -1, 1]))
    expect(plan.outShape).toEqual([4, 2, 5, 3])
    const out = new Float32Array(120)
    stridedCopy(plan, x, out)
    for (let q = 0; q < 120; q++) {
      const c = coords([4, 2, 5, 3], q)
      expect(out[q]).toBe(x[flat(xs, [c[1]!, c[3]!, c[0]!, c[2]!])])
    }
  })
  it("rejects a perm that is not a permutation", () => {
    expect(fails(planTranspose([2, 3], [0, 0])).argument).toBe("perm")
  })
})

// numpy-style slice reference for one axis.
const sliceIdx = (dim: number, b: number | null, e: number | null, s: number): Array<number> => {
  const r = Array.from({ length: dim }, (_, i) => i)
  const norm = (v: number) => (v < 0 ? v + dim : v)
  const out: Array<number> = []
  if (s > 0) {
    const bb = b === null ? 0 : Math.min(Math.max(norm(b), 0), dim), ee = e === null ? dim : Math.min(Math.max(norm(e), 0), dim)
    for (let i = bb; i < ee; i += s) out.push(r[i]!)
  } else {
    const bb = b === null ? dim - 1 : Math.min(Math.max(norm(b), -1), dim - 1), ee = e === null ? -1 : Math.min(Math.max(norm(e), -1), dim - 1)
    for (let i = bb; i > ee; i += s) out.push(r[i]!)
  }
  return out
}

describe("slice_by_index", () => {
  it("slices with strides, negative indices, negative strides, clamping and masks", () => {
    const xs = [5, 6, 7]
    const x = iota(210)
    const plan = ok(planSlice(xs, {
      begin: [1, -1, 10], end: [100, 0, -8], stride: [2, -2, -3], beginMask: [false, false, true], endMask: [false, false, false]
    }))
    const i0 = sliceIdx(5, 1, 100, 2), i1 = sliceIdx(6, -1, 0, -2), i2 = sliceIdx(7, null, -8, -3)
    expect(plan.outShape).toEqual([i0.length, i1.length, i2.length])
    const out = new Float32Array(sizeOf(plan.outShape))
    stridedCopy(plan, x, out)
    let q = 0
    for (const a of i0) for (const b of i1) for (const c of i2) expect(out[q++]).toBe(x[flat(xs, [a, b, c])])
  })
  it("squeeze_mask takes the element at begin and drops the axis; an empty slice has size 0", () => {
    const x = iota(12)
    const plan = ok(planSlice([3, 4], { begin: [-1, 1], end: [0, 3], squeezeMask: [true, false] }))
    expect(plan.outShape).toEqual([2])
    const out = new Float32Array(2)
    stridedCopy(plan, x, out)
    expect(Array.from(out)).toEqual([9, 10])
    expect(ok(planSlice([3, 4], { begin: [2, 0], end: [1, 4] })).outShape).toEqual([0, 4])
  })
  it("rejects a zero stride and a wrong number of begins", () => {
    expect(fails(planSlice([3], { begin: [0], end: [3], stride: [0] })).argument).toBe("stride")
    expect(fails(planSlice([3, 4], { begin: [0], end: [3, 4] })).argument).toBe("begin/end/stride")
  })
})

describe("pad", () => {
  const refPad = (xs: Array<number>, x: Float32Array, pads: Array<number>, mode: string, cv: number) => {
    const first = xs.length - pads.length / 2
    const os = xs.map((d, i) => (i >= first ? d + pads[2 * (i - first)]! + pads[2 * (i - first) + 1]! : d))
    return {
      os, out: Array.from({ length: sizeOf(os) }, (_, q) => {
        const c = coords(os, q)
        const src: Array<number> = []
        for (let d = 0; d < xs.length; d++) {
          let j = c[d]! - (d >= first ? pads[2 * (d - first)]! : 0)
          const n = xs[d]!
          if (j < 0 || j >= n) {
            if (mode === "constant") return cv
            j = mode === "replicate" ? Math.min(Math.max(j, 0), n - 1) : j < 0 ? -j : 2 * n - 2 - j
          }
          src.push(j)
        }
        return x[flat(xs, src)]!
      })
    }
  }
  it.each(["constant", "reflect", "replicate"] as const)("%s mode pads the last dims", (mode) => {
    const xs = [2, 3, 4]
    const x = rand(24, 1)
    const pads = [2, 1, 0, 3]
    const plan = ok(planPad(xs, pads, mode))
    const ref = refPad(xs, x, pads, mode, 7)
    expect(plan.outShape).toEqual(ref.os)
    const out = new Float32Array(sizeOf(ref.os))
    mappedCopy(plan, x, out, mode === "constant" ? 7 : 0)
    expect(Array.from(out)).toEqual(ref.out.map((v) => Math.fround(v)))
  })
  it("rejects reflect pads as large as the dim and negative pads", () => {
    expect(fails(planPad([3], [3, 0], "reflect")).message).toContain("at most 2")
    expect(fails(planPad([3], [-1, 0], "constant")).argument).toBe("pad")
  })
})

describe("tile", () => {
  it("repeats each dim reps times", () => {
    const x = iota(6)
    const plan = ok(planTile([2, 3], [2, 2]))
    expect(plan.outShape).toEqual([4, 6])
    const out = new Float32Array(24)
    mappedCopy(plan, x, out)
    for (let q = 0; q < 24; q++) { const [i, j] = coords([4, 6], q); expect(out[q]).toBe(x[(i! % 2) * 3 + (j! % 3)]) }
  })
})

describe("concat and split", () => {
  it("concatenate along a middle axis and split back", () => {
    const a = rand(2 * 1 * 3, 1), b = rand(2 * 4 * 3, 2)
    const plan = ok(planConcat([[2, 1, 3], [2, 4, 3]], -2))
    expect(plan.outShape).toEqual([2, 5, 3])
    const out = new Float32Array(30)
    concat(plan, [a, b], out)
    for (let q = 0; q < 30; q++) {
      const [n, k, i] = coords([2, 5, 3], q)
      expect(out[q]).toBe(k! < 1 ? a[n! * 3 + i!] : b[(n! * 4 + k! - 1) * 3 + i!])
    }
    const sp = ok(planSplit([2, 5, 3], 1, [1, 4]))
    const a2 = new Float32Array(6), b2 = new Float32Array(24)
    split(sp, out, [a2, b2])
    expect(Array.from(a2)).toEqual(Array.from(a))
    expect(Array.from(b2)).toEqual(Array.from(b))
  })
  it("rejects mismatched shapes and sizes that do not sum to the dim", () => {
    expect(fails(planConcat([[2, 3], [3, 3]], 1)).argument).toBe("values")
    expect(fails(planSplit([2, 5], 1, [2, 2])).message).toContain("summing to 5")
  })
})

describe("depth_to_space, space_to_depth, pixel_shuffle", () => {
  it("follow the DCR / CRD formulas and invert each other", () => {
    const bs = 2, xs = [2, 8, 3, 2]
    const x = iota(sizeOf(xs))
    const d2s = ok(planDepthToSpace(xs, bs))
    expect(d2s.outShape).toEqual([2, 2, 6, 4])
    const y = new Float32Array(x.length)
    stridedCopy(d2s, x, y)
    const ps = ok(planPixelShuffle(xs, bs))
    const z = new Float32Array(x.length)
    stridedCopy(ps, x, z)
    for (let q = 0; q < y.length; q++) {
      const [n, c, hh, ww] = coords([2, 2, 6, 4], q)
      const h = Math.floor(hh! / bs), i = hh! % bs, w = Math.floor(ww! / bs), j = ww! % bs
      expect(y[q]).toBe(x[flat(xs, [n!, (i * bs + j) * 2 + c!, h, w])])
      expect(z[q]).toBe(x[flat(xs, [n!, c! * bs * bs + i * bs + j, h, w])])
    }
    const s2d = ok(planSpaceToDepth([2, 2, 6, 4], bs))
    expect(s2d.outShape).toEqual(xs)
    const back = new Float32Array(x.length)
    stridedCopy(s2d, y, back)
    expect(Array.from(back)).toEqual(Array.from(x))
  })
  it("reject channels not divisible by the block area", () => {
    expect(fails(planDepthToSpace([1, 6, 2, 2], 2)).argument).toBe("x")
    expect(fails(planSpaceToDepth([1, 1, 3, 2], 2)).argument).toBe("x")
  })
})

describe("gather", () => {
  it("takes rows along an axis with negative indices counting from the end", () => {
    const x = iota(24)
    const plan = ok(planGather([2, 4, 3], [2, 2], 1))
    expect(plan.outShape).toEqual([2, 2, 2, 3])
    const idx = Int32Array.from([3, -4, 1, -1])
    const out = new Float32Array(24)
    gather(plan, x, idx, out)
    for (let q = 0; q < 24; q++) {
      const [n, a, b, i] = coords([2, 2, 2, 3], q)
      const j = (idx[a! * 2 + b!]! + 4) % 4
      expect(out[q]).toBe(x[(n! * 4 + j) * 3 + i!])
    }
  })
  it("fills out-of-range indices instead of reading outside x", () => {
    const plan = ok(planGather([3], [2], 0))
    const out = new Float32Array(2)
    gather(plan, Float32Array.from([1, 2, 3]), Int32Array.from([5, -4]), out, -1)
    expect(Array.from(out)).toEqual([-1, -1])
  })
  it("gather_along_axis picks per position (take_along_axis)", () => {
    const x = iota(12) // [3, 4]
    const idx = Int32Array.from([3, 0, 1, 1, 2, 2, -1, 0])
    const plan = ok(planGatherAlongAxis([3, 4], [2, 4], 0))
    const out = new Float32Array(8)
    gatherAlongAxis(plan, x, idx, out)
    for (let q = 0; q < 8; q++) { const [r, c] = coords([2, 4], q); expect(out[q]).toBe(x[((idx[q]! + 3) % 3) * 4 + c!]) ; void r }
    expect(fails(planGatherAlongAxis([3, 4], [2, 3], 0)).argument).toBe("indices")
  })
})

describe("topk", () => {
  it("returns the k largest in descending order with indices, ties by index", () => {
    const x = Float32Array.from([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])
    // shape [2, 6] axis -1, k 3
    const plan = ok(planTopk([2, 6], 3))
    const v = new Float32Array(6), i = new Int32Array(6)
    topk(plan, x, v, i)
    expect(Array.from(v)).toEqual([9, 5, 4, 8, 6, 5])
    expect(Array.from(i)).toEqual([5, 4, 2, 5, 1, 2])
  })
  it("sorts ascending along a leading axis", () => {
    const x = Float32Array.from([3, 0, 1, 2, 2, 9]) // [3, 2]
    const plan = ok(planTopk([3, 2], 2, 0, true))
    expect(plan.outShape).toEqual([2, 2])
    const v = new Float32Array(4), i = new Int32Array(4)
    topk(plan, x, v, i)
    expect(Array.from(v)).toEqual([1, 0, 2, 2])
    expect(Array.from(i)).toEqual([1, 0, 2, 1])
  })
  it("rejects k larger than the axis", () => {
    expect(fails(planTopk([2, 3], 4)).argument).toBe("k")
  })
})

describe("range and one_hot", () => {
  it("range_1d has ceil((end − start)/step) elements, including negative steps", () => {
    expect(ok(rangeLength(0, 10, 3))).toBe(4)
    expect(ok(rangeLength(5, 0, -2))).toBe(3)
    expect(ok(rangeLength(5, 0, 1))).toBe(0)
    expect(fails(rangeLength(0, 1, 0)).argument).toBe("step")
    const out = new Float32Array(3)
    range1d(5, -2, out)
    expect(Array.from(out)).toEqual([5, 3, 1])
  })
  it("one_hot writes on at each index and off elsewhere", () => {
    const out = new Float32Array(2 * 3 * 2)
    // indices [2, 2] with the depth axis inserted at 1
    oneHot(Int32Array.from([0, 2, -1, 7]), 2, 2, 3, 1, -1, out)
    expect(Array.from(out)).toEqual([1, -1, -1, -1, -1, 1, -1, -1, -1, -1, 1, -1])
  })
})

describe("concat interleave and gather batch_dims", () => {
  it("interleaves N equal pieces: element k of piece i lands at k·N + i", () => {
    const a = iota(6), b = iota(6).map((v) => v + 100), c = iota(6).map((v) => v + 200)
    const plan = ok(planConcat([[2, 3], [2, 3], [2, 3]], 1, true))
    expect(plan.outShape).toEqual([2, 9])
    const out = new Float32Array(18)
    concat(plan, [a, b, c], out)
    const pieces = [a, b, c]
    for (let q = 0; q < 18; q++) {
      const [r, p] = coords([2, 9], q)
      expect(out[q]).toBe(pieces[p! % 3]![r! * 3 + Math.floor(p! / 3)])
    }
    expect(fails(planConcat([[2, 3], [2, 4]], 1, true)).message).toContain("identical")
  })
  it("gathers per batch with batch_dims = 1", () => {
    const x = iota(2 * 4 * 2) // [2, 4, 2]
    const idx = Int32Array.from([0, 3, 2, 1, 1, 1]) // [2, 3]
    const plan = ok(planGather([2, 4, 2], [2, 3], 1, 1))
    expect(plan.outShape).toEqual([2, 3, 2])
    const out = new Float32Array(12)
    gather(plan, x, idx, out)
    for (let q = 0; q < 12; q++) {
      const [b, k, i] = coords([2, 3, 2], q)
      expect(out[q]).toBe(x[(b! * 4 + idx[b! * 3 + k!]!) * 2 + i!])
    }
    expect(fails(planGather([2, 4], [3, 1], 1, 1)).argument).toBe("batch_dims")
  })
})
