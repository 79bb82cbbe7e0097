/** Shape and indexing ops: reshape family, transpose, slicing, concat/split/stack, tile, pad, gather, topk. */
import type { OpImpl, Run, Val } from "./types.js"
import { OpError } from "./types.js"
import { expectShape, normAxis, planned, sizeOf, stridesOf } from "./util.js"
import {
  concat as kConcat, type ConcatPlan, mappedCopy, planConcat, planDepthToSpace, planPad, planSlice, planSplit, planTile, planTranspose,
  range1d as kRange1d,
  split as kSplit, stridedCopy as kStridedCopy, stridedScatter as kStridedScatter
} from "../kernels/index.js"

/** Output with the same data as `x`, viewed with the declared shape. */
const view: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const t = ctx.outType(0)
  if (sizeOf(t.shape) !== sizeOf(x.shape)) {
    throw new OpError(`${ctx.op.op}: ${sizeOf(x.shape)} elements cannot be viewed as [${t.shape.join(", ")}]`, "SIM-SHAPE")
  }
  ctx.alias(0, x)
  return undefined
}

/** Iterates the output positions of `outShape`, calling `f(flatOut, coords)`. */
const forEachIndex = (outShape: ReadonlyArray<number>, f: (k: number, idx: ReadonlyArray<number>) => void): void => {
  const r = outShape.length
  const n = sizeOf(outShape)
  const idx = new Array<number>(r).fill(0)
  for (let k = 0; k < n; k++) {
    f(k, idx)
    for (let d = r - 1; d >= 0; d--) {
      idx[d]!++
      if (idx[d]! < outShape[d]!) break
      idx[d] = 0
    }
  }
}

const transpose: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const perm = ctx.ints("perm").map((p) => normAxis(p, x.shape.length, "perm entry"))
  const shape = perm.map((p) => x.shape[p]!)
  const out = ctx.alloc(0)
  expectShape("transpose", out.shape, shape)
  const plan = planned(planTranspose(x.shape, perm))
  const o = out.data
  return () => kStridedCopy(plan, x.data, o)
}

/** Runtime-capable strided slice: per-axis start and step, with squeezed axes dropped from the output. */
const stridedCopy = (
  x: Val,
  o: Float32Array,
  outDims: ReadonlyArray<number>,
  axes: () => { readonly start: ArrayLike<number>; readonly step: ArrayLike<number> }
): Run => {
  const xs = stridesOf(x.shape)
  const r = x.shape.length
  const n = o.length
  const idx = new Int32Array(r)
  return () => {
    const { start, step } = axes()
    const a = x.data
    let base = 0
    for (let d = 0; d < r; d++) base += start[d]! * xs[d]!
    idx.fill(0)
    let off = base
    for (let k = 0; k < n; k++) {
      o[k] = a[off]!
      for (let d = r - 1; d >= 0; d--) {
        if (outDims[d]! <= 1) continue
        idx[d]!++
        off += step[d]! * xs[d]!
        if (idx[d]! < outDims[d]!) break
        off -= step[d]! * xs[d]! * outDims[d]!
        idx[d] = 0
      }
    }
  }
}

/** slice_by_index arguments as kernel options; a squeezed axis takes its begin clamped into range and stride 1. */
const sliceOptions = (
  shape: ReadonlyArray<number>,
  begin: ArrayLike<number>,
  end: ArrayLike<number>,
  stride: ReadonlyArray<number>,
  bm: ReadonlyArray<number>,
  em: ReadonlyArray<number>,
  sm: ReadonlyArray<number>
) => ({
  begin: Array.from(shape, (D, d) => {
    const b = begin[d]!
    return sm[d] ? Math.min(Math.max(b < 0 ? b + D : b, 0), D - 1) : b
  }),
  end: Array.from(shape, (_, d) => end[d]!),
  stride: stride.map((v, d) => (sm[d] ? 1 : v)),
  beginMask: bm.map((v) => v !== 0), endMask: em.map((v) => v !== 0), squeezeMask: sm.map((v) => v !== 0)
})

const sliceByIndex: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const r = x.shape.length
  const begin = ctx.val("begin"), end = ctx.val("end")
  const stride = ctx.ints("stride", new Array(r).fill(1))
  const bm = ctx.ints("begin_mask", new Array(r).fill(0))
  const em = ctx.ints("end_mask", new Array(r).fill(0))
  const sm = ctx.ints("squeeze_mask", new Array(r).fill(0))
  const out = ctx.alloc(0)
  const start = new Int32Array(r)
  const dims = new Array<number>(r)
  const solve = (check: boolean) => {
    for (let d = 0; d < r; d++) {
      const D = x.shape[d]!
      const s = stride[d]!
      let b = begin.data[d]!, e = end.data[d]!
      if (sm[d]) {
        if (b < 0) b += D
        start[d] = Math.min(Math.max(b, 0), D - 1)
        dims[d] = 1
        continue
      }
      if (s > 0) {
        b = bm[d] ? 0 : b < 0 ? Math.max(b + D, 0) : Math.min(b, D)
        e = em[d] ? D : e < 0 ? Math.max(e + D, 0) : Math.min(e, D)
        dims[d] = Math.max(0, Math.ceil((e - b) / s))
      } else {
        b = bm[d] ? D - 1 : b < 0 ? Math.max(b + D, -1) : Math.min(b, D - 1)
        e = em[d] ? -1 : e < 0 ? Math.max(e + D, -1) : Math.min(e, D - 1)
        dims[d] = Math.max(0, Math.ceil((e - b) / s))
      }
      start[d] = b
    }
    if (check) {
      expectShape("slice_by_index", out.shape, dims.filter((_, d) => !sm[d]))
    }
  }
  if (begin.isConst && end.isConst) {
    solve(true)
    const plan = planned(planSlice(x.shape, sliceOptions(x.shape, begin.data, end.data, stride, bm, em, sm)))
    expectShape("slice_by_index", out.shape, plan.outShape)
    const o = out.data
    return () => kStridedCopy(plan, x.data, o)
  }
  // Runtime bounds: the output shape is static, so the bounds only move the window.
  solve(false)
  const outDims = [...dims]
  const res = { start, step: stride }
  return stridedCopy(x, out.data, outDims, () => {
    solve(false)
    return res
  })
}

/** x with the window that slice_by_index would read replaced by `update` (constant bounds). */
const sliceUpdate: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const update = ctx.val("update")
  const r = x.shape.length
  const begin = ctx.val("begin"), end = ctx.val("end")
  if (!begin.isConst || !end.isConst) throw new OpError("slice_update: begin and end must be constants")
  const stride = ctx.ints("stride", new Array(r).fill(1))
  const bm = ctx.ints("begin_mask", new Array(r).fill(0))
  const em = ctx.ints("end_mask", new Array(r).fill(0))
  const sm = ctx.ints("squeeze_mask", new Array(r).fill(0))
  const out = ctx.alloc(0)
  expectShape("slice_update", out.shape, x.shape)
  const plan = planned(planSlice(x.shape, sliceOptions(x.shape, begin.data, end.data, stride, bm, em, sm)))
  if (sizeOf(plan.outShape) !== sizeOf(update.shape) || plan.outShape.length !== update.shape.length ||
    plan.outShape.some((d, i) => d !== update.shape[i])) {
    throw new OpError(`slice_update: update has shape [${update.shape.join(", ")}], the window is ` +
      `[${plan.outShape.join(", ")}]`)
  }
  const o = out.data
  return () => {
    o.set(x.data)
    kStridedScatter(plan, update.data, o)
  }
}

/** `on_value` where the index names the position along the new axis, `off_value` elsewhere (and for bad indices). */
const oneHot: OpImpl = (ctx) => {
  const indices = ctx.val("indices")
  const size = ctx.num("one_hot_vector_size")
  const r = indices.shape.length
  const axis = normAxis(ctx.num("axis", -1), r + 1)
  const on = ctx.num("on_value", 1), off = ctx.num("off_value", 0)
  const out = ctx.alloc(0)
  const shape = [...indices.shape]
  shape.splice(axis, 0, size)
  expectShape("one_hot", out.shape, shape)
  // The new axis splits the indices into `outer` blocks of `inner` consecutive elements.
  const inner = sizeOf(indices.shape.slice(axis))
  const outer = sizeOf(indices.shape.slice(0, axis))
  const o = out.data
  return () => {
    const ix = indices.data
    o.fill(off)
    for (let a = 0; a < outer; a++) {
      for (let b = 0; b < inner; b++) {
        const k = ix[a * inner + b]!
        if (Number.isInteger(k) && k >= 0 && k < size) o[(a * size + k) * inner + b] = on
      }
    }
  }
}

/** Each output pixel copies the input pixel at floor(position / scale), per (H, W) plane. */
const upsampleNearest: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const sh = ctx.num("scale_factor_height", 1), sw = ctx.num("scale_factor_width", 1)
  const r = x.shape.length
  const H = x.shape[r - 2]!, W = x.shape[r - 1]!
  const OH = Math.floor(H * sh), OW = Math.floor(W * sw)
  const out = ctx.alloc(0)
  expectShape("upsample_nearest_neighbor", out.shape, [...x.shape.slice(0, r - 2), OH, OW])
  const planes = sizeOf(x.shape.slice(0, r - 2))
  // Source row and column of every output row and column, computed once.
  const rows = Int32Array.from({ length: OH }, (_, i) => Math.min(H - 1, Math.floor(i / sh)))
  const cols = Int32Array.from({ length: OW }, (_, j) => Math.min(W - 1, Math.floor(j / sw)))
  const o = out.data
  return () => {
    const a = x.data
    for (let p = 0; p < planes; p++) {
      for (let i = 0; i < OH; i++) {
        const src = (p * H + rows[i]!) * W
        const dst = (p * OH + i) * OW
        for (let j = 0; j < OW; j++) o[dst + j] = a[src + cols[j]!]!
      }
    }
  }
}

const sliceBySize: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const r = x.shape.length
  const begin = ctx.val("begin")
  const size = ctx.val("size")
  const out = ctx.alloc(0)
  const start = new Int32Array(r)
  const step = new Array<number>(r).fill(1)
  const dims = new Array<number>(r)
  const solve = () => {
    for (let d = 0; d < r; d++) {
      let b = begin.data[d]!
      if (b < 0) b += x.shape[d]!
      const s = size.data[d]!
      start[d] = b
      dims[d] = s < 0 ? x.shape[d]! - b : s
    }
  }
  solve()
  expectShape("slice_by_size", out.shape, dims)
  if (begin.isConst) {
    const plan = planned(planSlice(x.shape, { begin: [...start], end: dims.map((n, d) => start[d]! + n) }))
    expectShape("slice_by_size", out.shape, plan.outShape)
    const o = out.data
    return () => kStridedCopy(plan, x.data, o)
  }
  const res = { start, step }
  return stridedCopy(x, out.data, [...dims], () => (solve(), res))
}

const concat: OpImpl = (ctx) => {
  const values = ctx.tuple("values")
  if (values.length === 0) throw new OpError("concat: no values")
  const r = values[0]!.shape.length
  const axis = normAxis(ctx.num("axis"), r)
  const interleave = ctx.bool("interleave", false)
  const out = ctx.alloc(0)
  const shape = [...values[0]!.shape]
  shape[axis] = values.reduce((s, v) => s + v.shape[axis]!, 0)
  expectShape("concat", out.shape, shape)
  return concatInto(values, planned(planConcat(values.map((v) => v.shape), axis, interleave)), out.data)
}

/** The eval step of concat and stack: the values' current buffers joined by the plan into `o`. */
const concatInto = (values: ReadonlyArray<Val>, plan: ConcatPlan, o: Float32Array) => {
  const srcs = values.map((v) => v.data)
  return () => {
    for (let i = 0; i < values.length; i++) srcs[i] = values[i]!.data
    kConcat(plan, srcs, o)
  }
}

/** stack is concat over the values viewed with a unit dim inserted at the axis. */
const stack: OpImpl = (ctx) => {
  const values = ctx.tuple("values")
  const r = values[0]!.shape.length
  const axis = normAxis(ctx.num("axis"), r + 1)
  const out = ctx.alloc(0)
  const shape = [...values[0]!.shape]
  shape.splice(axis, 0, values.length)
  expectShape("stack", out.shape, shape)
  const unit = (s: ReadonlyArray<number>) => [...s.slice(0, axis), 1, ...s.slice(axis)]
  return concatInto(values, planned(planConcat(values.map((v) => unit(v.shape)), axis)), out.data)
}

const split: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const axis = normAxis(ctx.num("axis"), x.shape.length)
  const D = x.shape[axis]!
  let sizes: Array<number>
  if (ctx.has("split_sizes")) sizes = ctx.ints("split_sizes")
  else {
    const k = ctx.num("num_splits")
    // The count sizes an array: it must be one of the outputs' counts before anything is built from it.
    if (!Number.isInteger(k) || k < 1 || k !== ctx.nOut) {
      throw new OpError(`split: num_splits ${k} for ${ctx.nOut} declared output(s)`)
    }
    if (D % k !== 0) throw new OpError(`split: dim ${D} does not divide into ${k} pieces`)
    sizes = new Array<number>(k).fill(D / k)
  }
  if (sizes.length !== ctx.nOut) throw new OpError(`split: ${sizes.length} pieces but ${ctx.nOut} outputs declared`)
  const outs = sizes.map((s, i) => {
    const o = ctx.alloc(i)
    const shape = [...x.shape]
    shape[axis] = s
    expectShape("split", o.shape, shape)
    return o.data
  })
  const plan = planned(planSplit(x.shape, axis, sizes))
  return () => kSplit(plan, x.data, outs)
}

const tile: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const reps = ctx.ints("reps")
  if (reps.length !== x.shape.length) throw new OpError(`tile: reps has ${reps.length} entries for rank ${x.shape.length}`)
  const shape = x.shape.map((d, i) => d * reps[i]!)
  const out = ctx.alloc(0)
  expectShape("tile", out.shape, shape)
  const plan = planned(planTile(x.shape, reps))
  const o = out.data
  return () => mappedCopy(plan, x.data, o)
}

const pad: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const p = ctx.ints("pad")
  const mode = ctx.str("mode", "constant")
  const cv = ctx.num("constant_val", 0)
  const r = x.shape.length
  const N = p.length / 2
  if (!Number.isInteger(N) || N > r) throw new OpError(`pad: ${p.length} pad entries for rank ${r}`)
  const before = new Array<number>(r).fill(0)
  const after = new Array<number>(r).fill(0)
  for (let k = 0; k < N; k++) {
    before[r - N + k] = p[2 * k]!
    after[r - N + k] = p[2 * k + 1]!
  }
  const shape = x.shape.map((d, i) => d + before[i]! + after[i]!)
  const out = ctx.alloc(0)
  expectShape("pad", out.shape, shape)
  if (mode !== "constant" && mode !== "reflect" && mode !== "replicate") {
    throw new OpError(`pad: unknown mode "${mode}" (constant, reflect or replicate)`)
  }
  const plan = planned(planPad(x.shape, p, mode))
  const o = out.data
  return () => mappedCopy(plan, x.data, o, cv)
}

const gather: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const ind = ctx.val("indices")
  const axis = normAxis(ctx.num("axis", 0), x.shape.length)
  const batchDims = ctx.num("batch_dims", 0)
  if (batchDims !== 0) throw new OpError("gather: batch_dims > 0 is not supported by the simulator", "SIM-UNSUPPORTED-OP")
  const shape = [...x.shape.slice(0, axis), ...ind.shape, ...x.shape.slice(axis + 1)]
  const out = ctx.alloc(0)
  expectShape("gather", out.shape, shape)
  const outer = sizeOf(x.shape.slice(0, axis))
  const inner = sizeOf(x.shape.slice(axis + 1))
  const D = x.shape[axis]!
  const K = sizeOf(ind.shape)
  const o = out.data
  return () => {
    const a = x.data, id = ind.data
    for (let p = 0; p < outer; p++) {
      for (let k = 0; k < K; k++) {
        let j = id[k]!
        if (j < 0) j += D
        j = j < 0 ? 0 : j >= D ? D - 1 : j // out of range: undefined but memory safe
        const from = (p * D + j) * inner
        o.set(a.subarray(from, from + inner), (p * K + k) * inner)
      }
    }
  }
}

const gatherAlongAxis: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const ind = ctx.val("indices")
  const axis = normAxis(ctx.num("axis", 0), x.shape.length)
  const out = ctx.alloc(0)
  expectShape("gather_along_axis", out.shape, ind.shape)
  const xs = stridesOf(x.shape)
  const base = new Int32Array(sizeOf(ind.shape))
  forEachIndex(ind.shape, (k, idx) => {
    let off = 0
    for (let d = 0; d < idx.length; d++) if (d !== axis) off += idx[d]! * xs[d]!
    base[k] = off
  })
  const D = x.shape[axis]!
  const sa = xs[axis]!
  const o = out.data
  return () => {
    const a = x.data, id = ind.data
    for (let k = 0; k < base.length; k++) {
      let j = id[k]!
      if (j < 0) j += D
      j = j < 0 ? 0 : j >= D ? D - 1 : j
      o[k] = a[base[k]! + j * sa]!
    }
  }
}

const depthToSpace: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const bs = ctx.num("block_size")
  const [n, C, H, W] = x.shape as [number, number, number, number]
  if (x.shape.length !== 4 || C % (bs * bs) !== 0) throw new OpError("depth_to_space: needs [n, C, H, W] with C divisible by block_size²")
  const Co = C / (bs * bs)
  const shape = [n, Co, H * bs, W * bs]
  const out = ctx.alloc(0)
  expectShape("depth_to_space", out.shape, shape)
  const plan = planned(planDepthToSpace(x.shape, bs))
  const o = out.data
  return () => kStridedCopy(plan, x.data, o)
}

const shapeOp: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const out = ctx.alloc(0)
  expectShape("shape", out.shape, [x.shape.length])
  x.shape.forEach((d, i) => (out.data[i] = d))
  return undefined
}

const range1d: OpImpl = (ctx) => {
  const start = ctx.val("start"), end = ctx.val("end"), step = ctx.val("step")
  const out = ctx.alloc(0)
  const o = out.data
  const n = o.length
  return () => {
    const s = start.data[0]!, st = step.data[0]!, e = end.data[0]!
    const len = Math.max(0, Math.ceil((e - s) / st))
    kRange1d(s, st, o)
    // Past the runtime length (or for a NaN length) the static output holds zeros.
    if (!(len >= n)) o.fill(0, Math.min(len, n) || 0)
  }
}

const topk: OpImpl = (ctx) => {
  const x = ctx.val("x")
  const axis = normAxis(ctx.num("axis", -1), x.shape.length)
  const D = x.shape[axis]!
  let k = ctx.num("k", 1)
  if (k < 0) k = D
  const ascending = ctx.bool("ascending", false)
  const values = ctx.alloc(0)
  const shape = [...x.shape]
  shape[axis] = k
  expectShape("topk", values.shape, shape)
  const indices = ctx.nOut > 1 ? ctx.alloc(1) : undefined
  const outer = sizeOf(x.shape.slice(0, axis))
  const inner = sizeOf(x.shape.slice(axis + 1))
  const taken = new Uint8Array(D)
  const better = ascending ? (a: number, b: number) => a < b : (a: number, b: number) => a > b
  return () => {
    const a = x.data, vo = values.data
    for (let p = 0; p < outer; p++) {
      for (let q = 0; q < inner; q++) {
        taken.fill(0)
        for (let t = 0; t < k; t++) {
          let best = -1
          let bv = 0
          for (let j = 0; j < D; j++) {
            if (taken[j]) continue
            const v = a[(p * D + j) * inner + q]!
            if (best < 0 || better(v, bv)) {
              best = j
              bv = v
            }
          }
          taken[best] = 1
          vo[(p * k + t) * inner + q] = bv
          if (indices) indices.data[(p * k + t) * inner + q] = best
        }
      }
    }
  }
}

/** Shape ops by MIL name. */
export const shapeOps: Record<string, OpImpl> = {
  reshape: view,
  expand_dims: view,
  squeeze: view,
  flatten2d: view,
  transpose,
  slice_by_index: sliceByIndex,
  slice_update: sliceUpdate,
  one_hot: oneHot,
  upsample_nearest_neighbor: upsampleNearest,
  slice_by_size: sliceBySize,
  concat,
  stack,
  split,
  tile,
  pad,
  gather,
  gather_along_axis: gatherAlongAxis,
  depth_to_space: depthToSpace,
  shape: shapeOp,
  range_1d: range1d,
  topk
}
